"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): for two consecutive
layers joined by a positively homogeneous activation (ReLU, or none), scale each channel
between them so both layers' weight ranges of that channel become ``sqrt(r1 * r2)``.

``y = W2 relu(W1 x + b1)`` equals ``(W2 S) relu(S^-1 W1 x + S^-1 b1)`` for any positive
diagonal ``S``, so the float model is unchanged; ``s_i = sqrt(r1_i / r2_i)`` with ``r1_i`` the
range of the first layer's output channel ``i`` and ``r2_i`` that of the second layer's input
channel ``i``. Run it on the folded float weights (after BN folding and ReLU fusion), before
calibration.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .module_paths import get_module
from .nn._quant_layer import QuantLayerMixin

#: Activations ``f`` with ``f(s * x) = s * f(x)`` for ``s > 0``, which equalization may cross.
HOMOGENEOUS_ACTIVATIONS = (nn.Identity, nn.ReLU, nn.LeakyReLU)


def _output_axis(layer: nn.Module) -> int:
    """Weight axis of the output channels: 1 for ConvTranspose (C_in, C_out/g, ...), else 0."""
    return 1 if isinstance(layer, nn.ConvTranspose2d) else 0


def _input_axis(layer: nn.Module) -> int:
    return 0 if isinstance(layer, nn.ConvTranspose2d) else 1


def _channel_ranges(weight: torch.Tensor, axis: int) -> torch.Tensor:
    """max |w| of each slice along ``axis``: (weight.shape[axis],)."""
    dims = [d for d in range(weight.dim()) if d != axis]
    return weight.detach().abs().amax(dim=dims)


def _equalizable(first: nn.Module, second: nn.Module) -> bool:
    if not (isinstance(first, QuantLayerMixin) and isinstance(second, QuantLayerMixin)):
        return False
    if not isinstance(first.fused_act, HOMOGENEOUS_ACTIVATIONS):
        return False
    if getattr(second, 'groups', 1) != 1 or (isinstance(first, nn.ConvTranspose2d)
                                             and first.groups != 1):
        return False
    return first.weight.shape[_output_axis(first)] == second.weight.shape[_input_axis(second)]


def _sequence_layers(sequential: nn.Sequential, prefix: str) -> List[Tuple[str, nn.Module]]:
    """The children of ``sequential`` in order, an mmcv-style ``ConvModule`` whose norm and
    activation were folded / fused standing for its ``conv``, ``nn.Identity`` left out."""
    layers = []
    for name, child in sequential.named_children():
        conv = getattr(child, 'conv', None)
        if isinstance(conv, QuantLayerMixin) and all(
                isinstance(getattr(child, attr, None), (nn.Identity, type(None)))
                for attr in ('activate', getattr(child, 'norm_name', None) or 'norm')):
            layers.append((f'{prefix}{name}.conv', conv))
        elif not isinstance(child, nn.Identity):
            layers.append((prefix + name, child))
    return layers


def find_equalization_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """(first, second) quantized layers that follow each other in an ``nn.Sequential`` with
    only a positively homogeneous activation (fused into the first) between them, so the first
    one's output feeds nothing but the second; the second has ``groups == 1``."""
    pairs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        layers = _sequence_layers(module, f'{name}.' if name else '')
        for (first_name, first), (second_name, second) in zip(layers, layers[1:]):
            if _equalizable(first, second):
                pairs.append((first_name, second_name))
    return pairs


@torch.no_grad()
def equalize_pair(first: nn.Module, second: nn.Module) -> torch.Tensor:
    """Rescale the channels between ``first`` and ``second`` in place; returns the scales
    ``s`` (C,) (first's output channel ``i`` divided by ``s_i``, second's input multiplied).
    Channels where either range is 0 keep ``s = 1``."""
    out_axis, in_axis = _output_axis(first), _input_axis(second)
    first_ranges = _channel_ranges(first.weight, out_axis)
    second_ranges = _channel_ranges(second.weight, in_axis)
    live = (first_ranges > 0) & (second_ranges > 0)
    scales = torch.where(live, torch.sqrt(first_ranges / second_ranges.clamp_min(1e-30)),
                         torch.ones_like(first_ranges))
    shape = [1] * first.weight.dim()
    shape[out_axis] = -1
    first.weight.div_(scales.reshape(shape))
    if first.bias is not None:
        first.bias.div_(scales)
    shape = [1] * second.weight.dim()
    shape[in_axis] = -1
    second.weight.mul_(scales.reshape(shape))
    return scales


def equalize(model: nn.Module,
             pairs: Optional[Sequence[Tuple[str, str]]] = None,
             iterations: int = 20,
             tolerance: float = 1e-4) -> int:
    """Cross-layer equalization of ``pairs`` (None: :func:`find_equalization_pairs`), swept
    until no scale moves by more than ``tolerance`` (chains such as A-B-C need several sweeps)
    or ``iterations`` sweeps. Returns how many pairs were equalized."""
    pairs = find_equalization_pairs(model) if pairs is None else [tuple(p) for p in pairs]
    layers = [(get_module(model, a), get_module(model, b)) for a, b in pairs]
    for (first_name, second_name), (first, second) in zip(pairs, layers):
        if not _equalizable(first, second):
            raise ValueError(f'cannot equalize {first_name} -> {second_name}: both must be '
                             'quantized layers, the first with a ReLU / no activation fused, '
                             'the second with groups=1, and the channels must match')
    for _ in range(iterations):
        moved = max((float((equalize_pair(a, b) - 1).abs().max()) for a, b in layers),
                    default=0.0)
        if moved <= tolerance:
            break
    return len(pairs)
