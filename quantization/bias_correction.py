"""Empirical bias correction (Nagel et al. 2019): quantization shifts the mean of a layer's
output; subtract that shift, measured per output channel on calibration data, from the bias.

For each quantized layer with enabled quantizers, on the inputs the quantized model gives it:
``shift_c = mean over batches and positions of (layer_q(x) - layer_float(x))_c`` of the output
before the fused activation, then ``bias_c -= shift_c`` (a layer without a bias gets one).
All layers are measured in one pass. The float reference uses the layer's current bias, so
correct a model once (a second call would subtract the same shift again).
"""
from typing import Dict, Iterable, Optional

import torch
from mmengine.dist import all_reduce
from torch import nn

from .calibration import ForwardFn, run_batches
from .nn._quant_layer import QuantLayerMixin
from .tensor_quantizer import TensorQuantizer


def _corrected_layers(model: nn.Module) -> Dict[str, nn.Module]:
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, QuantLayerMixin) and (module.input_quantizer.is_enabled
                                                    or module.weight_quantizer.is_enabled):
            layers[name] = module
    return layers


def _pre_activation(layer: nn.Module, args: tuple, quantized: bool) -> torch.Tensor:
    """The layer's output before its fused activation, with its quantizers on or off."""
    quantizers = [q for q in layer.children() if isinstance(q, TensorQuantizer)]
    enabled = [q.is_enabled for q in quantizers]
    act, layer.fused_act = layer.fused_act, nn.Identity()
    if not quantized:
        for quantizer in quantizers:
            quantizer.disable()
    try:
        return layer.forward(*args)
    finally:
        for quantizer, was_enabled in zip(quantizers, enabled):
            quantizer.enable() if was_enabled else quantizer.disable()
        layer.fused_act = act


def _channel_means(difference: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Mean over every axis but the channel axis (last for Linear, 1 for convolutions)."""
    axis = difference.dim() - 1 if isinstance(layer, nn.Linear) else 1
    return difference.mean(dim=[d for d in range(difference.dim()) if d != axis])


@torch.no_grad()
def measure_bias_shift(model: nn.Module,
                       data: Iterable,
                       num_batches: int,
                       forward_fn: Optional[ForwardFn] = None) -> Dict[str, torch.Tensor]:
    """Mean quantized-minus-float output of each quantized layer, (C_out,) per layer name,
    averaged over the calls of ``num_batches`` batches of ``data`` (and over the ranks of a
    distributed run, each of which passes its own batches)."""
    layers = _corrected_layers(model)
    sums: Dict[str, torch.Tensor] = {}
    calls = dict.fromkeys(layers, 0)

    def record(name, layer, args):
        difference = _pre_activation(layer, args, True) - _pre_activation(layer, args, False)
        means = _channel_means(difference, layer)
        sums[name] = sums[name] + means if name in sums else means
        calls[name] += 1

    hooks = [(layer, lambda m, args, name=name: record(name, m, args))
             for name, layer in layers.items()]
    run_batches(model, data, num_batches, forward_fn, hooks)
    shifts = {}
    for name, total in sums.items():
        count = torch.tensor(float(calls[name]), device=total.device)
        all_reduce(total)  # sums over the ranks; nothing in one process
        all_reduce(count)
        shifts[name] = total / count
    return shifts


@torch.no_grad()
def correct_bias(model: nn.Module,
                 data: Iterable,
                 num_batches: int,
                 forward_fn: Optional[ForwardFn] = None) -> Dict[str, float]:
    """Subtract each quantized layer's measured output shift from its bias (once, after
    calibration, with the final amax). Returns the largest |shift| per layer, in output
    units."""
    corrected = {}
    for name, shift in measure_bias_shift(model, data, num_batches, forward_fn).items():
        layer = model.get_submodule(name)
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(shift))
        layer.bias.sub_(shift.to(layer.bias.dtype))
        corrected[name] = float(shift.abs().max())
    return corrected


def layer_biases(model: nn.Module) -> Dict[str, Optional[torch.Tensor]]:
    """Copies of the quantized layers' biases (None where a layer has none), so a model can be
    corrected again from the same start (:func:`restore_biases`)."""
    return {
        name: None if module.bias is None else module.bias.detach().clone()
        for name, module in model.named_modules() if isinstance(module, QuantLayerMixin)
    }


@torch.no_grad()
def restore_biases(model: nn.Module, biases: Dict[str, Optional[torch.Tensor]]):
    """Put back the biases :func:`layer_biases` copied (a bias correction added is removed)."""
    for name, bias in biases.items():
        layer = model.get_submodule(name)
        if bias is None:
            layer.bias = None
        else:
            layer.bias.copy_(bias)


def add_saved_biases(model: nn.Module, state_dict: dict) -> int:
    """Give each quantized layer without a bias the zero bias Parameter that ``state_dict``
    holds one for (bias correction adds biases), so the state loads strictly; returns how
    many."""
    added = 0
    for name, module in model.named_modules():
        saved = state_dict.get(f'{name}.bias' if name else 'bias')
        if isinstance(module, QuantLayerMixin) and module.bias is None and saved is not None:
            module.bias = nn.Parameter(torch.zeros_like(saved, device=module.weight.device))
            added += 1
    return added
