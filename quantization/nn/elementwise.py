"""Multi-input ops whose inputs share one quantizer, so TensorRT keeps INT8 through them.

Model code that writes ``a + b``, ``a * b`` or ``torch.cat(xs, 1)`` uses the float modules
:class:`Add`, :class:`Mul` and :class:`Concat` instead (``self.add = Add()``,
``out = self.add(a, b)``); the replacement pass turns them into :class:`QuantAdd`,
:class:`QuantMul` / :class:`QuantConcat`, exactly as it turns Conv2d into QuantConv2d.
"""
from typing import Sequence, Tuple

import torch
from mmengine.registry import MODELS
from torch import nn

from ..descriptor import QUANT_DESC_8BIT_PER_TENSOR
from ..tensor_quantizer import TensorQuantizer
from ._quant_layer import DescLike, check_replaceable, label_quantizers


@MODELS.register_module()
class Add(nn.Module):
    """Float ``a + b`` as a module, so the replacement pass can find it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


@MODELS.register_module()
class Mul(nn.Module):
    """Float ``a * b`` (a gate) as a module, so the replacement pass can find it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


@MODELS.register_module()
class Concat(nn.Module):
    """Float ``torch.cat(tensors, dim)`` as a module, so the replacement pass can find it."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(tensors), self.dim)


class _ElementwiseQuant:
    """Builds an elementwise quant module from its float twin (``float_arguments`` name the
    constructor arguments read from it)."""

    float_arguments: Tuple[str, ...] = ()

    @classmethod
    def from_float(cls,
                   float_module: nn.Module,
                   quant_desc_input: DescLike = None,
                   quant_desc_weight=None,
                   name: str = '') -> nn.Module:
        check_replaceable(float_module, name)
        arguments = {key: getattr(float_module, key) for key in cls.float_arguments}
        quant_module = cls(**arguments, quant_desc_input=quant_desc_input)
        quant_module.train(float_module.training)
        label_quantizers(quant_module, name)
        return quant_module


class _SharedInputQuantizer(_ElementwiseQuant):
    """Builds the one ``input_quantizer`` used by every input (a per-tensor descriptor)."""

    def init_quantizers(self, quant_desc_input: DescLike = None):
        self.input_quantizer = TensorQuantizer(
            quant_desc_input or QUANT_DESC_8BIT_PER_TENSOR, name='input_quantizer',
            role='shared input')
        if self.input_quantizer.quant_desc.axis is not None:
            raise ValueError(f'{type(self).__name__}: a shared input quantizer must be per tensor')


@MODELS.register_module()
class QuantAdd(_SharedInputQuantizer, nn.Module):
    """``q(a) + q(b)`` with one quantizer for both inputs (TensorRT fuses such residual adds)."""

    def __init__(self, quant_desc_input=None):
        super().__init__()
        self.init_quantizers(quant_desc_input)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.input_quantizer(a) + self.input_quantizer(b)


@MODELS.register_module()
class QuantConcat(_SharedInputQuantizer, nn.Module):
    """``cat([q(x) for x in tensors], dim)`` with one quantizer (one scale) for every input."""

    float_arguments = ('dim', )

    def __init__(self, dim: int = 1, quant_desc_input=None):
        super().__init__()
        self.dim = dim
        self.init_quantizers(quant_desc_input)

    def forward(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.input_quantizer(x) for x in tensors], self.dim)


@MODELS.register_module()
class QuantMul(_ElementwiseQuant, nn.Module):
    """``q_a(a) * q_b(b)``: each input has its own quantizer (a product needs no common scale),
    so both enter the multiply from Q/DQ and TensorRT can run it as an INT8 pointwise op."""

    def __init__(self, quant_desc_input=None):
        super().__init__()
        desc = quant_desc_input or QUANT_DESC_8BIT_PER_TENSOR
        self.input_quantizer = TensorQuantizer(desc, name='input_quantizer')
        self.other_quantizer = TensorQuantizer(desc, name='other_quantizer')

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.input_quantizer(a) * self.other_quantizer(b)
