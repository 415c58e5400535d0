"""Evaluate an MMEngine model with an MMEngine evaluator, without a Runner."""
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from mmengine.dist import collect_results
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import is_model_wrapper
from torch import nn
from tqdm import tqdm


@dataclass
class FrameResults:
    """What one metric's ``process`` appended, one entry per frame in dataset order (every
    rank's, on the main process; None on the others), and the metric that scores them."""
    metric: BaseMetric
    results: Optional[list]


def _as_evaluator(evaluator: Union[Evaluator, dict, list], dataloader: Iterable) -> Evaluator:
    if not isinstance(evaluator, Evaluator):
        evaluator = Evaluator(evaluator)
    dataset = getattr(dataloader, 'dataset', None)
    if dataset is not None and getattr(evaluator, 'dataset_meta', None) is None:
        evaluator.dataset_meta = getattr(dataset, 'metainfo', None)
    return evaluator


@torch.no_grad()
def _process(model: nn.Module, dataloader: Iterable, evaluator: Evaluator, progress: bool):
    model = model.module if is_model_wrapper(model) else model
    model.eval()
    for batch in tqdm(dataloader, desc='Evaluating', disable=not progress, leave=False):
        evaluator.process(data_samples=model.val_step(batch), data_batch=batch)


def evaluate_model(model: nn.Module,
                   dataloader: Iterable,
                   evaluator: Union[Evaluator, dict, list],
                   num_samples: Optional[int] = None,
                   progress: bool = False,
                   gather: bool = True) -> dict:
    """Run ``model.val_step`` over ``dataloader`` and return the evaluator's metrics.

    Args:
        model (nn.Module): An MMEngine ``BaseModel`` (a wrapper is unwrapped); left in eval mode.
        dataloader (Iterable): Batches as the model's data preprocessor takes them.
        evaluator (Evaluator | dict | list): Evaluator, or metric config(s) to build one.
        num_samples (int, optional): Dataset size passed to ``evaluate``; defaults to
            ``len(dataloader.dataset)``.
        gather (bool): Under ``torch.distributed``, merge every rank's results (MMEngine's
            ``evaluate``, a collective call); False scores this rank's results alone, so ranks
            can evaluate different models at the same time.
    """
    evaluator = _as_evaluator(evaluator, dataloader)
    _process(model, dataloader, evaluator, progress)
    size = num_samples if num_samples is not None else len(dataloader.dataset)
    if gather or not (dist.is_available() and dist.is_initialized()):
        return evaluator.evaluate(size)
    return _evaluate_locally(evaluator, size)


def evaluate_frames(model: nn.Module,
                    dataloader: Iterable,
                    evaluator: Union[Evaluator, dict, list],
                    num_samples: Optional[int] = None,
                    progress: bool = False,
                    gather: bool = True) -> Tuple[dict, List[FrameResults]]:
    """:func:`evaluate_model` that also returns each metric's per-frame results, for
    :func:`quantization.bootstrap.bootstrap` (``gather=False``: this rank's, no collective
    call)."""
    evaluator = _as_evaluator(evaluator, dataloader)
    _process(model, dataloader, evaluator, progress)
    size = num_samples if num_samples is not None else len(dataloader.dataset)
    distributed = dist.is_available() and dist.is_initialized()
    frames = frame_results(evaluator, size, gather or not distributed)
    if gather or not distributed:
        return evaluator.evaluate(size), frames
    return _evaluate_locally(evaluator, size), frames


def frame_results(evaluator: Evaluator, size: int, gather: bool = True) -> List[FrameResults]:
    """Every metric's per-frame results so far (every rank's with ``gather``, else this
    rank's; first ``size``), before ``evaluator.evaluate(size)`` consumes them."""
    return [
        FrameResults(metric, collect_results(list(metric.results), size, 'cpu')
                     if gather else list(metric.results[:size]))
        for metric in evaluator.metrics
    ]


def _evaluate_locally(evaluator: Evaluator, size: int) -> dict:
    """``Evaluator.evaluate`` on this rank's results only (no collective call)."""
    metrics = {}
    for metric in evaluator.metrics:
        results = metric.compute_metrics(metric.results[:size])
        metric.results.clear()
        prefix = f'{metric.prefix}/' if metric.prefix else ''
        metrics.update({prefix + key: value for key, value in results.items()})
    return metrics
