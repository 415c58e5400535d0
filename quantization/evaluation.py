"""Evaluate an MMEngine model with an MMEngine evaluator, without a Runner."""
import torch.distributed as dist
from typing import Iterable, Optional, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.model import is_model_wrapper
from torch import nn
from tqdm import tqdm


@torch.no_grad()
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
    model = model.module if is_model_wrapper(model) else model
    if not isinstance(evaluator, Evaluator):
        evaluator = Evaluator(evaluator)
    dataset = getattr(dataloader, 'dataset', None)
    if dataset is not None and getattr(evaluator, 'dataset_meta', None) is None:
        evaluator.dataset_meta = getattr(dataset, 'metainfo', None)
    model.eval()
    for batch in tqdm(dataloader, desc='Evaluating', disable=not progress, leave=False):
        evaluator.process(data_samples=model.val_step(batch), data_batch=batch)
    size = num_samples if num_samples is not None else len(dataset)
    if gather or not (dist.is_available() and dist.is_initialized()):
        return evaluator.evaluate(size)
    return _evaluate_locally(evaluator, size)


def _evaluate_locally(evaluator: Evaluator, size: int) -> dict:
    """``Evaluator.evaluate`` on this rank's results only (no collective call)."""
    metrics = {}
    for metric in evaluator.metrics:
        results = metric.compute_metrics(metric.results[:size])
        metric.results.clear()
        prefix = f'{metric.prefix}/' if metric.prefix else ''
        metrics.update({prefix + key: value for key, value in results.items()})
    return metrics
