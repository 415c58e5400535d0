"""Replacement pass: turn the float layers of a model into quantized ones, in place."""
from fnmatch import fnmatchcase
from typing import Dict, Optional, Sequence, Type

import torch
from torch import nn

from .descriptor import QuantDescriptor
from .module_paths import set_module
from .nn import (Add, Concat, Mul, QuantAdd, QuantConcat, QuantConv2d, QuantConvTranspose2d,
                 QuantLinear, QuantMul)

#: float type -> quantized type. Exact types only: a subclass may change forward, so it is
#: quantized only when a ``module_map`` names it (mmcv's wrappers are added, see
#: :func:`mmcv_wrapper_map`).
DEFAULT_QUANT_MAP: Dict[Type[nn.Module], Type[nn.Module]] = {
    nn.Conv2d: QuantConv2d,
    nn.ConvTranspose2d: QuantConvTranspose2d,
    nn.Linear: QuantLinear,
    Add: QuantAdd,
    Mul: QuantMul,
    Concat: QuantConcat,
}


def mmcv_wrapper_map() -> Dict[Type[nn.Module], Type[nn.Module]]:
    """mmcv's Conv2d / ConvTranspose2d / Linear wrappers, which mmcv's ``build_conv_layer`` and
    ``build_upsample_layer`` (``'deconv'``) create; they add only empty-tensor handling for
    torch < 1.4. Empty when mmcv is not installed."""
    try:
        from mmcv.cnn.bricks import wrappers
    except ImportError:
        return {}
    return {
        wrappers.Conv2d: QuantConv2d,
        wrappers.ConvTranspose2d: QuantConvTranspose2d,
        wrappers.Linear: QuantLinear,
    }


def _selected(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:

    def hit(pattern):
        return fnmatchcase(name, pattern) or name.startswith(pattern + '.')

    return any(hit(p) for p in include) and not any(hit(p) for p in exclude)


def quantize_model(model: nn.Module,
                   include: Sequence[str] = ('*', ),
                   exclude: Sequence[str] = (),
                   quant_desc_input: Optional[QuantDescriptor] = None,
                   quant_desc_weight: Optional[Dict[str, QuantDescriptor]] = None,
                   module_map: Optional[Dict[Type[nn.Module], Type[nn.Module]]] = None) -> int:
    """Replace float layers by their quantized twins, keeping names and Parameter objects.

    Args:
        model (nn.Module): Changed in place.
        include (Sequence[str]): Glob patterns of module names to quantize (a pattern also
            selects everything under the module it names). Defaults to all.
        exclude (Sequence[str]): Glob patterns left in float. Defaults to none.
        quant_desc_input (QuantDescriptor | dict, optional): Input quantizer of every layer;
            None keeps each class's default (INT8 per tensor, histogram).
        quant_desc_weight (dict, optional): Weight descriptor per quantized class name, e.g.
            ``{'QuantConvTranspose2d': QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL}``.
        module_map (dict, optional): Extra or overriding ``{float type: quantized type}``.

    Returns:
        int: How many modules were replaced.
    """
    quant_map = {**DEFAULT_QUANT_MAP, **mmcv_wrapper_map(), **(module_map or {})}
    weight_descs = dict(quant_desc_weight or {})
    known = {cls.__name__ for cls in quant_map.values()}
    unknown = sorted(set(weight_descs) - known)
    if unknown:
        raise KeyError(f'quant_desc_weight names unknown quantized types {unknown}; '
                       f'known: {sorted(known)}')
    model_param = next(model.parameters(), None)
    model_device = model_param.device if model_param is not None else None
    replaced = 0
    for name, module in list(model.named_modules()):
        quant_cls = quant_map.get(type(module))
        if not name or quant_cls is None or not _selected(name, include, exclude):
            continue
        quant_module = quant_cls.from_float(module, quant_desc_input,
                                            weight_descs.get(quant_cls.__name__), name=name)
        weight = getattr(module, 'weight', None)
        device = weight.device if isinstance(weight, torch.Tensor) else model_device
        if device is not None:
            quant_module.to(device)  # the new quantizers; parameters stay the same objects
        set_module(model, name, quant_module)
        replaced += 1
    return replaced
