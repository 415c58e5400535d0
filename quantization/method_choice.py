"""The amax per layer: for each layer's input quantizer, the method (or the fraction of max's
amax) whose quantized layer output comes closest to the float layer's output on calibration
batches, instead of one method for the whole model.

One calibration pass serves every candidate (:meth:`CalibrationManager.calibrate`); then each
layer runs alone on the inputs the float model gives it, once per candidate, with its own input
and weight quantizers on. The layers' inputs of the batches are held in memory: pass a few.

The error can weight positions: an *importance* function runs the float model on a batch and
returns (N, 1, H, W) weights, e.g. a detector's confidence that an object is there. Every 4-d
layer output is then weighted by them, max-pooled to a coarser map or repeated (nearest) to a
finer one, so that the ranges serve what the model is for and not the empty background. Layers
whose output matters everywhere (a detector's heatmap, whose false positives lie on the
background) can be left unweighted.
"""
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from torch import nn

from .calib import HistogramCalibrator
from .calibration import (ForwardFn, StopForward, default_forward, forward_until_stopped,
                          run_batches)
from .descriptor import AMAX_METHODS
from .toggle import enabled_state, name_matches, restore_enabled_state, set_all_quantizers


#: ``fn(float_model, batch) -> (N, 1, H, W)`` position weights >= 0; it runs the model itself
ImportanceFn = Callable[[nn.Module, Any], torch.Tensor]

#: the keyword arguments each reduction takes
_METHOD_KWARGS = {'max': (), 'percentile': ('percentile', ), 'mse': ('start_bin', ),
                  'entropy': ('start_bin', )}


@dataclass
class MethodChoice:
    """The candidate chosen for one layer and the errors behind it."""
    layer: str
    method: str  # a method, or 'max x0.60' for a fraction of max's amax
    errors: Dict[str, float]  # candidate -> mean (weighted) squared error of the layer's output
    amax: float  # the amax loaded


def _chosen_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """Layers with an enabled histogram input quantizer that has data, and a weight quantizer."""
    layers = {}
    for name, module in model.named_modules():
        quantizer = getattr(module, 'input_quantizer', None)
        if quantizer is None or not hasattr(module, 'weight_quantizer'):
            continue
        calibrator = quantizer._calibrator
        if (quantizer.is_enabled and isinstance(calibrator, HistogramCalibrator)
                and calibrator.calib_hist is not None and quantizer.quant_desc.amax is None):
            layers[name] = module
    return layers


@torch.no_grad()
def float_layer_calls(model: nn.Module, layers: Dict[str, nn.Module], data: Iterable,
                      num_batches: int,
                      forward_fn: ForwardFn) -> Tuple[Dict[str, List[Tuple[int, tuple]]], list]:
    """The positional inputs each layer receives from the float model, call by call, each with
    the index of its batch; and what ``forward_fn`` returned for each batch."""
    calls: Dict[str, List[Tuple[int, tuple]]] = {name: [] for name in layers}
    returned = []
    hooks = [(module, lambda _, args, name=name: calls[name].append(
        (len(returned), tuple(a.detach() for a in args)))) for name, module in layers.items()]
    snapshot = enabled_state(model)
    set_all_quantizers(model, False)
    try:
        run_batches(model, data, num_batches,
                    lambda m, batch: returned.append(forward_fn(m, batch)), hooks)
    finally:
        restore_enabled_state(model, snapshot)
    return calls, returned


def _results_dropped(forward_fn: ForwardFn) -> ForwardFn:
    """``forward_fn`` returning None, so that no batch's predictions are held."""

    def forward(model: nn.Module, batch) -> None:
        forward_fn(model, batch)

    return forward


def float_layer_inputs(model: nn.Module, layers: Dict[str, nn.Module], data: Iterable,
                       num_batches: int, forward_fn: ForwardFn) -> Dict[str, List[tuple]]:
    """The positional inputs each layer receives from the float model, call by call."""
    calls, _ = float_layer_calls(model, layers, data, num_batches, _results_dropped(forward_fn))
    return {name: [args for _, args in layer_calls] for name, layer_calls in calls.items()}


@torch.no_grad()
def quantized_layer_inputs(model: nn.Module, layer: nn.Module, batches: Sequence,
                           forward_fn: ForwardFn) -> List[tuple]:
    """The positional inputs of ``layer``'s first call in each batch's forward through
    ``model`` as it is quantized now; each forward stops at the layer."""
    captured = []

    def capture(_, args):
        captured.append(tuple(a.detach() for a in args))
        raise StopForward

    handle = layer.register_forward_pre_hook(capture)
    try:
        for batch in batches:
            forward_until_stopped(model, batch, forward_fn)
    finally:
        handle.remove()
    return captured


def resize_importance(weights: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, 1, H, W) weights on an (h, w) map: max-pooled where it is coarser, nearest-repeated
    where it is finer."""
    if weights.shape[-2:] == tuple(size):
        return weights
    if all(s <= w for s, w in zip(size, weights.shape[-2:])):
        return F.adaptive_max_pool2d(weights, size)
    return F.interpolate(weights, size=tuple(size), mode='nearest')


def squared_error(got: torch.Tensor, want: torch.Tensor,
                  weights: Optional[torch.Tensor]) -> Tuple[float, float]:
    """(sum of squared errors, number of elements), both weighted by ``weights`` (N, 1, H, W)
    when the output is (N, C, h, w) of the same N; plain otherwise."""
    squared = (got - want)**2
    if weights is None or squared.dim() != 4 or squared.shape[0] != weights.shape[0]:
        return float(squared.sum()), float(squared.numel())
    weights = resize_importance(weights.to(squared.dtype), squared.shape[-2:])
    return float((squared * weights).sum()), float(weights.sum()) * squared.shape[1]


def _kwargs_for(method: str, method_kwargs: dict) -> dict:
    return {k: v for k, v in method_kwargs.items() if k in _METHOD_KWARGS[method]}


def _candidates(quantizer, methods: Sequence[str], grid: int,
                method_kwargs: dict) -> Dict[str, float]:
    """candidate name -> amax: each method's, then ``k / grid`` of max's for k = 1..grid."""
    calibrator = quantizer._calibrator
    amaxes = {m: float(calibrator.compute_amax(m, **_kwargs_for(m, method_kwargs)))
              for m in methods}
    if grid:
        largest = float(calibrator.compute_amax('max'))
        amaxes.update({f'max x{k / grid:.2f}': largest * k / grid for k in range(1, grid + 1)})
    return amaxes


def _sequential_calls(model: nn.Module, name: str, layer: nn.Module, batches: list,
                      float_calls: List[Tuple[int, tuple]],
                      forward_fn: ForwardFn) -> List[Tuple[int, tuple]]:
    """``layer``'s inputs in the quantized model, paired with its float calls by batch."""
    if [batch for batch, _ in float_calls] != list(range(len(batches))):
        raise ValueError(f'{name}: called {len(float_calls)} times in {len(batches)} forwards; '
                         'the sequential search pairs one call per forward')
    inputs = quantized_layer_inputs(model, layer, batches, forward_fn)
    return list(enumerate(inputs))


@torch.no_grad()
def choose_amax_methods(model: nn.Module,
                        data: Iterable,
                        num_batches: int = 2,
                        methods: Sequence[str] = AMAX_METHODS,
                        forward_fn: Optional[ForwardFn] = None,
                        importance_fn: Optional[ImportanceFn] = None,
                        grid: int = 0,
                        unweighted: Sequence[str] = (),
                        sequential: bool = False,
                        **method_kwargs) -> List[MethodChoice]:
    """Load into each layer's input quantizer the amax, among those of ``methods`` and ``grid``
    fractions of max's, with the smallest mean squared error of the layer's output against the
    float layer's, on the inputs of ``num_batches`` batches of ``data``; returns the choice and
    errors per layer.

    Call after :meth:`CalibrationManager.calibrate` (its histograms, and the weights' amax).
    ``importance_fn`` (which then runs the batches instead of ``forward_fn``) weights the error
    by position (see the module's docstring), except for the layers matching the glob patterns
    ``unweighted``. ``sequential``: each layer's candidates run on the inputs the quantized model
    gives it, with the layers before it (module order) already chosen, against the float
    layer on the float inputs, so a range can make up for the error upstream; the batches are
    then kept in memory and each layer must run once per forward. Ties go to the earlier
    candidate. The ``method_kwargs`` go to the reductions that take them
    (``percentile=99.99``, ``start_bin=128``). Other quantizers (element-wise ones, layers
    without data) keep their amax.
    """
    unknown = sorted(set(methods) - set(AMAX_METHODS))
    if unknown:
        raise ValueError(f'unknown amax methods {unknown}; choose from {list(AMAX_METHODS)}')
    if grid < 0:
        raise ValueError(f'grid must be >= 0, got {grid}')
    layers = _chosen_layers(model)
    forward_fn = forward_fn or default_forward
    if sequential:
        data = list(islice(data, num_batches))
    calls, weights = float_layer_calls(model, layers, data, num_batches,
                                       importance_fn or _results_dropped(forward_fn))
    choices = []
    for name, layer in layers.items():
        quantizer = layer.input_quantizer
        snapshot = enabled_state(layer)
        set_all_quantizers(layer, False)
        expected = [layer(*args) for _, args in calls[name]]
        restore_enabled_state(layer, snapshot)
        if sequential:
            calls[name] = _sequential_calls(model, name, layer, data, calls[name], forward_fn)
        candidates = _candidates(quantizer, methods, grid, method_kwargs)
        plain = any(name_matches(name, pattern) for pattern in unweighted)
        sums = torch.zeros(len(candidates), 2, dtype=torch.float64)  # (squared, elements)
        for index, amax in enumerate(candidates.values()):
            quantizer.set_amax(amax)
            for (batch, args), want in zip(calls[name], expected):
                error = squared_error(layer(*args), want, None if plain else weights[batch])
                sums[index] += torch.tensor(error, dtype=torch.float64)
        all_reduce(sums)  # the ranks' batches (a rank may have none): one choice for all
        if sums[0, 1] == 0:
            continue
        errors = dict(zip(candidates, (sums[:, 0] / sums[:, 1]).tolist()))
        best = min(candidates, key=lambda c: errors[c])
        quantizer.set_amax(candidates[best])
        choices.append(MethodChoice(name, best, errors, candidates[best]))
    return choices
