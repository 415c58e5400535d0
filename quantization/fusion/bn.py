"""Fold BatchNorm into the Conv2d / ConvTranspose2d / Linear before it, in place.

With ``f = gamma / sqrt(running_var + eps)`` per output channel:
``w' = w * f`` (along the output-channel axis) and ``b' = (b - running_mean) * f + beta``.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..module_paths import get_module, set_module

FOLDABLE = {
    nn.BatchNorm2d: (nn.Conv2d, nn.ConvTranspose2d),
    nn.BatchNorm1d: (nn.Linear, ),
}


def _check_pair(layer_name: str, layer: nn.Module, bn_name: str, bn: nn.Module):
    allowed = next((layers for bn_type, layers in FOLDABLE.items() if type(bn) is bn_type), None)
    if allowed is None or not isinstance(layer, allowed):
        raise TypeError(f'cannot fold {bn_name} ({type(bn).__name__}) into {layer_name} '
                        f'({type(layer).__name__})')
    out_channels = layer.weight.shape[1] * layer.groups if isinstance(
        layer, nn.ConvTranspose2d) else layer.weight.shape[0]
    if bn.num_features != out_channels:
        raise ValueError(f'cannot fold {bn_name} ({bn.num_features} features) into {layer_name} '
                         f'({out_channels} output channels)')
    weight_quantizer = getattr(layer, 'weight_quantizer', None)
    if weight_quantizer is not None and weight_quantizer.has_amax:
        raise ValueError(f'{layer_name}: its weight quantizer is already calibrated on the '
                         'unfolded weight; fold BatchNorm before calibration')


@torch.no_grad()
def fold_bn(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm):
    """Fold ``bn`` into ``layer``'s weight and bias in place.

    The weight Parameter keeps its identity. A layer without bias takes over ``bn.bias`` as its
    bias Parameter (so optimizers built earlier keep training it); only a non-affine BN forces
    a new bias Parameter.
    """
    factor = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    factor = factor / torch.sqrt(bn.running_var + bn.eps)
    weight = layer.weight
    if isinstance(layer, nn.ConvTranspose2d):
        # (C_in, C_out/g, kH, kW): output channel j of group g is column g * C_out/g + j.
        groups = layer.groups
        view = weight.view(groups, weight.shape[0] // groups, weight.shape[1], *weight.shape[2:])
        view.mul_(factor.view(groups, 1, weight.shape[1], *([1] * (weight.dim() - 2))))
    else:
        weight.mul_(factor.view(-1, *([1] * (weight.dim() - 1))))
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    fused_bias = (bias - bn.running_mean) * factor + beta
    if layer.bias is not None:
        layer.bias.copy_(fused_bias)
    elif bn.affine:
        bn.bias.copy_(fused_bias)
        layer.bias = bn.bias
    else:
        layer.bias = nn.Parameter(fused_bias)


def runs_before(order: tuple, first: str, second: str) -> bool:
    """Whether ``first`` comes before ``second`` in an mmcv ConvModule ``order``."""
    return first in order and second in order and order.index(first) < order.index(second)


def _is_foldable(layer: nn.Module, bn: nn.Module) -> bool:
    allowed = FOLDABLE.get(type(bn))
    return allowed is not None and isinstance(layer, allowed)


def find_bn_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """(layer name, BN name) pairs found in the module structure.

    Two layouts are recognised: a layer directly followed by its BN inside an ``nn.Sequential``,
    and mmcv's ``ConvModule`` with ``order`` conv before norm. BNs that model code applies in
    ``forward`` in another layout (for instance mmdet3d's PFNLayer, whose BN is registered before
    its Linear) are passed to :func:`fuse_bn` as explicit pairs.
    """
    pairs = []
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (layer_name, layer), (bn_name, bn) in zip(children, children[1:]):
                if _is_foldable(layer, bn):
                    pairs.append((prefix + layer_name, prefix + bn_name))
        norm_name = getattr(module, 'norm_name', None)
        order = tuple(getattr(module, 'order', ()))
        if norm_name and hasattr(module, 'conv') and runs_before(order, 'conv', 'norm'):
            bn = getattr(module, norm_name, None)
            if _is_foldable(module.conv, bn):
                pairs.append((prefix + 'conv', prefix + norm_name))
    return pairs


def fuse_bn(
    model: nn.Module,
    pairs: Optional[Sequence[Tuple[str, str]]] = None,
    extra_pairs: Sequence[Tuple[str, str]] = ()
) -> int:
    """Fold BatchNorms into their layers and replace them by ``nn.Identity``.

    Args:
        model (nn.Module): Changed in place.
        pairs (Sequence[tuple], optional): ``(layer name, BN name)`` pairs; None finds them with
            :func:`find_bn_pairs`.
        extra_pairs (Sequence[tuple]): Pairs added to the found ones (e.g. the PFN's).

    Returns:
        int: How many pairs were fused.
    """
    pairs = list(find_bn_pairs(model) if pairs is None else pairs)
    pairs += [tuple(pair) for pair in extra_pairs if tuple(pair) not in pairs]
    for layer_name, bn_name in pairs:
        layer, bn = get_module(model, layer_name), get_module(model, bn_name)
        _check_pair(layer_name, layer, bn_name, bn)
    for layer_name, bn_name in pairs:
        fold_bn(get_module(model, layer_name), get_module(model, bn_name))
        set_module(model, bn_name, nn.Identity())
    return len(pairs)
