"""Evaluate an MMEngine model with an MMEngine evaluator, without a Runner."""
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
                   progress: bool = False) -> dict:
    """Run ``model.val_step`` over ``dataloader`` and return the evaluator's metrics.

    Args:
        model (nn.Module): An MMEngine ``BaseModel`` (a wrapper is unwrapped); left in eval mode.
        dataloader (Iterable): Batches as the model's data preprocessor takes them.
        evaluator (Evaluator | dict | list): Evaluator, or metric config(s) to build one.
        num_samples (int, optional): Dataset size passed to ``evaluate``; defaults to
            ``len(dataloader.dataset)``.
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
    return evaluator.evaluate(num_samples if num_samples is not None else len(dataset))
