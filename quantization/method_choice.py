"""The amax method per layer: for each layer's input quantizer, the method whose quantized layer
output comes closest to the float layer's output on calibration batches, instead of one method
for the whole model.

One calibration pass serves every method (:meth:`CalibrationManager.calibrate`); then each
layer runs alone on the inputs the float model gives it, once per method, with its own input
and weight quantizers on. The layers' inputs of the batches are held in memory: pass a few.
"""
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import torch
from torch import nn

from .calib import HistogramCalibrator
from .calibration import ForwardFn, default_forward, run_batches
from .descriptor import AMAX_METHODS
from .toggle import enabled_state, restore_enabled_state, set_all_quantizers


#: the keyword arguments each reduction takes
_METHOD_KWARGS = {'max': (), 'percentile': ('percentile', ), 'mse': ('start_bin', ),
                  'entropy': ('start_bin', )}


@dataclass
class MethodChoice:
    """The method chosen for one layer and the error behind it."""
    layer: str
    method: str
    errors: Dict[str, float]  # method -> mean squared error of the layer's output


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
def float_layer_inputs(model: nn.Module, layers: Dict[str, nn.Module], data: Iterable,
                       num_batches: int, forward_fn: ForwardFn) -> Dict[str, List[tuple]]:
    """The positional inputs each layer receives from the float model, call by call."""
    inputs: Dict[str, List[tuple]] = {name: [] for name in layers}
    hooks = [(module, lambda _, args, name=name: inputs[name].append(
        tuple(a.detach() for a in args))) for name, module in layers.items()]
    snapshot = enabled_state(model)
    set_all_quantizers(model, False)
    try:
        run_batches(model, data, num_batches, forward_fn, hooks)
    finally:
        restore_enabled_state(model, snapshot)
    return inputs


def _kwargs_for(method: str, method_kwargs: dict) -> dict:
    return {k: v for k, v in method_kwargs.items() if k in _METHOD_KWARGS[method]}


@torch.no_grad()
def choose_amax_methods(model: nn.Module,
                        data: Iterable,
                        num_batches: int = 2,
                        methods: Sequence[str] = AMAX_METHODS,
                        forward_fn: Optional[ForwardFn] = None,
                        **method_kwargs) -> List[MethodChoice]:
    """Load into each layer's input quantizer the amax of the method in ``methods`` with the
    smallest mean squared error of the layer's output against the float layer's, on the
    inputs of ``num_batches`` batches of ``data``; returns the choice and errors per layer.

    Call after :meth:`CalibrationManager.calibrate` (its histograms, and the weights' amax).
    Ties go to the earlier method. The ``method_kwargs`` go to the reductions that take them
    (``percentile=99.99``, ``start_bin=128``). Other quantizers (element-wise ones, layers
    without data) keep their amax.
    """
    unknown = sorted(set(methods) - set(AMAX_METHODS))
    if unknown:
        raise ValueError(f'unknown amax methods {unknown}; choose from {list(AMAX_METHODS)}')
    layers = _chosen_layers(model)
    inputs = float_layer_inputs(model, layers, data, num_batches, forward_fn or default_forward)
    choices = []
    for name, layer in layers.items():
        if not inputs[name]:
            continue
        quantizer = layer.input_quantizer
        snapshot = enabled_state(layer)
        set_all_quantizers(layer, False)
        expected = [layer(*args) for args in inputs[name]]
        restore_enabled_state(layer, snapshot)
        errors = {}
        for method in methods:
            quantizer.load_calib_amax(method, **_kwargs_for(method, method_kwargs))
            squared = sum(float(((layer(*args) - want)**2).sum())
                          for args, want in zip(inputs[name], expected))
            errors[method] = squared / sum(want.numel() for want in expected)
        best = min(methods, key=lambda m: errors[m])
        quantizer.load_calib_amax(best, **_kwargs_for(best, method_kwargs))
        choices.append(MethodChoice(name, best, errors))
    return choices
