"""Learned activation ranges for PTQ: every activation quantizer's amax trained on calibration
batches with LSQ's gradient (:func:`~quantization.tensor_quant.fake_quant_learned_amax`), so that
one module's output (a detector's head, a segmentation network's logits) in the quantized model
comes closest to the same module's output in the float model.

No labels: the loss compares the quantized model with the float one, as PD-Quant (Liu et al.
2023, "Post-Training Quantization Based on Prediction Difference Metric") tunes activation
scales against the prediction difference. Weights and biases stay as they are. Unlike the
per-layer search (:mod:`.method_choice`), which fits each range to its own layer's output, every
range here answers to the output the model is for, with the errors of all the others in place.

Adam moves each amax by a step proportional to its calibrated value (``lr * amax_0``, cosine
decay to 0), so ranges of 0.1 and of 50 learn alike. When the loss over the batches is not lower
after training than before, the calibrated ranges are put back.
"""
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from torch import nn
from tqdm import tqdm

from .calibration import ForwardFn, StopForward, default_forward, forward_until_stopped
from .tensor_quantizer import TensorQuantizer
from .toggle import enabled_state, named_quantizers, restore_enabled_state, set_all_quantizers

#: ``fn(quantized_output, float_output) -> scalar Tensor``, both the watched module's output
DistanceFn = Callable[[Any, Any], torch.Tensor]


@dataclass
class RangeLearningResult:
    """``loss_before`` / ``loss_after``: the distance over the batches with the calibrated and
    the learned ranges; ``kept``: whether the learned ranges stayed (else the calibrated ones
    were put back); ``amax``: quantizer name -> (calibrated, final) amax."""
    steps: int
    batches: int
    loss_before: float
    loss_after: float
    kept: bool
    amax: Dict[str, tuple]


def flat_tensors(output: Any) -> List[torch.Tensor]:
    """The tensors of a nested output (dicts in key order, lists, tuples), depth first."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [t for value in output.values() for t in flat_tensors(value)]
    if isinstance(output, (list, tuple)):
        return [t for value in output for t in flat_tensors(value)]
    return []


def relative_squared_error(got: Any, want: Any) -> torch.Tensor:
    """Mean over the output's tensors of ``mean((got - want)**2) / mean(want**2)``: each tensor
    counts alike whatever its scale."""
    pairs = list(zip(flat_tensors(got), flat_tensors(want)))
    if not pairs:
        raise ValueError('the watched module returned no tensors')
    errors = [((g - w)**2).mean() / (w**2).mean().clamp_min(1e-12) for g, w in pairs]
    return torch.stack(errors).mean()


def softmax_kl(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(want) || softmax(got))`` over the class axis 1 of (N, C, ...) logits, mean
    over the other positions: the prediction difference of a classifier or segmenter, which
    counts where the classes compete and not the size of logits that no decision reads."""
    log_want = F.log_softmax(want, dim=1)
    log_got = F.log_softmax(got, dim=1)
    return (log_want.exp() * (log_want - log_got)).sum(1).mean()


def learnable_quantizers(model: nn.Module) -> Dict[str, TensorQuantizer]:
    """Enabled per-tensor activation quantizers with a calibrated (not a fixed) amax."""
    return {
        name: quantizer for name, quantizer in named_quantizers(model)
        if quantizer.is_enabled and quantizer.role != 'weight' and quantizer.has_amax
        and quantizer.quant_desc.axis is None and quantizer.quant_desc.amax is None
    }


def module_output(model: nn.Module, module: nn.Module, batch, forward_fn: ForwardFn) -> Any:
    """``module``'s output in ``forward_fn(model, batch)``; the forward stops there. Gradients
    flow when enabled by the caller."""
    captured = []

    def capture(_, __, output):
        captured.append(output)
        raise StopForward

    handle = module.register_forward_hook(capture)
    try:
        forward_until_stopped(model, batch, forward_fn)
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f'{type(module).__name__}: not called in the forward of a batch')
    return captured[0]


def _detached(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, dict):
        return {key: _detached(value) for key, value in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(_detached(value) for value in output)
    return output


@torch.no_grad()
def _float_outputs(model: nn.Module, module: nn.Module, batches: list,
                   forward_fn: ForwardFn) -> list:
    snapshot = enabled_state(model)
    set_all_quantizers(model, False)
    try:
        return [_detached(module_output(model, module, b, forward_fn)) for b in batches]
    finally:
        restore_enabled_state(model, snapshot)


@torch.no_grad()
def _mean_distance(model, module, batches, targets, forward_fn, distance_fn) -> float:
    total = torch.zeros(2, dtype=torch.float64)  # (sum of distances, batches)
    for batch, target in zip(batches, targets):
        total += torch.tensor(
            [float(distance_fn(module_output(model, module, batch, forward_fn), target)), 1.0],
            dtype=torch.float64)
    all_reduce(total)  # the ranks' batches
    return float(total[0] / total[1].clamp_min(1))


def learn_ranges(model: nn.Module,
                 data: Iterable,
                 num_batches: int,
                 output_module: str,
                 steps: int = 200,
                 lr: float = 0.01,
                 distance_fn: Optional[DistanceFn] = None,
                 forward_fn: Optional[ForwardFn] = None,
                 progress: bool = False) -> RangeLearningResult:
    """Train every activation amax (:func:`learnable_quantizers`) of the calibrated ``model``
    for ``steps`` Adam steps, one of the first ``num_batches`` batches of ``data`` each (held in
    memory, in turn), against ``distance_fn`` (default :func:`relative_squared_error`) between
    the outputs of the submodule ``output_module`` with quantizers on and off.

    Args:
        lr (float): Adam's step for each amax as a fraction of its calibrated value.

    Returns:
        RangeLearningResult: the amax left are fixed buffers again (learned or calibrated).
    """
    if steps < 1 or num_batches < 1 or lr <= 0:
        raise ValueError(f'learn_ranges needs steps, num_batches >= 1 and lr > 0; got {steps}, '
                         f'{num_batches}, {lr}')
    module = model.get_submodule(output_module)
    forward_fn = forward_fn or default_forward
    distance_fn = distance_fn or relative_squared_error
    batches = list(islice(data, num_batches))
    if not batches:
        raise ValueError('learn_ranges: the data holds no batch')
    quantizers = learnable_quantizers(model)
    calibrated = {name: q.amax.detach().clone() for name, q in quantizers.items()}
    was_training = model.training
    trains = {parameter: parameter.requires_grad for parameter in model.parameters()}
    model.eval()
    model.requires_grad_(False)
    try:
        targets = _float_outputs(model, module, batches, forward_fn)
        before = _mean_distance(model, module, batches, targets, forward_fn, distance_fn)
        groups = [dict(params=[q.learn_amax().requires_grad_(True)],
                       lr=lr * max(float(calibrated[name]), 1e-6))
                  for name, q in quantizers.items()]
        optimizer = torch.optim.Adam(groups)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        for step in tqdm(range(steps), desc='learning ranges', disable=not progress):
            index = step % len(batches)
            with torch.enable_grad():
                distance = distance_fn(module_output(model, module, batches[index], forward_fn),
                                       targets[index])
                optimizer.zero_grad()
                distance.backward()
            for group in groups:
                amax = group['params'][0]
                if amax.grad is not None:
                    all_reduce(amax.grad, op='mean')  # one range for every rank
            optimizer.step()
            schedule.step()
        for quantizer in quantizers.values():
            quantizer.fix_amax()
        after = _mean_distance(model, module, batches, targets, forward_fn, distance_fn)
        kept = after < before
        if not kept:
            for name, quantizer in quantizers.items():
                quantizer.set_amax(calibrated[name])
    finally:
        for quantizer in quantizers.values():
            quantizer.fix_amax()
        for parameter, requires_grad in trains.items():
            parameter.requires_grad_(requires_grad)
        model.train(was_training)
    amax = {name: (float(calibrated[name]), float(q.amax)) for name, q in quantizers.items()}
    return RangeLearningResult(steps, len(batches), before, after, kept, amax)
