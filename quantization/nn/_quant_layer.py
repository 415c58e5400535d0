"""What every quantized weight layer shares: an input and a weight quantizer, a fused activation."""
from typing import Optional, Union

from torch import nn

from ..descriptor import QuantDescriptor, as_descriptor
from ..tensor_quantizer import TensorQuantizer

DescLike = Optional[Union[QuantDescriptor, dict]]


class QuantLayerMixin:
    """Adds ``input_quantizer``, ``weight_quantizer`` and ``fused_act`` to a float layer.

    Subclasses set ``default_quant_desc_input`` and ``default_quant_desc_weight``, and
    ``weight_channels`` (the number of weight channels along the descriptor's axis).
    ``fused_act`` is an ``nn.Identity`` until :func:`quantization.fusion.fuse_relu` moves a
    following ReLU into the layer, so that Conv(+BN)+ReLU is one unit.
    """

    default_quant_desc_input: QuantDescriptor
    default_quant_desc_weight: QuantDescriptor

    def init_quantizers(self,
                        quant_desc_input: DescLike = None,
                        quant_desc_weight: DescLike = None):
        desc_input = as_descriptor(quant_desc_input) or self.default_quant_desc_input
        weight_desc = as_descriptor(quant_desc_weight) or self.default_quant_desc_weight
        axis = weight_desc.axis
        if axis is not None and not -self.weight.dim() <= axis < self.weight.dim():
            raise ValueError(f'{type(self).__name__}: weight axis {axis} does not exist for a '
                             f'weight of shape {tuple(self.weight.shape)}')
        self.input_quantizer = TensorQuantizer(desc_input, name='input_quantizer', role='input')
        channels = None if weight_desc.axis is None else self.weight.shape[weight_desc.axis]
        self.weight_quantizer = TensorQuantizer(
            weight_desc, num_channels=channels, name='weight_quantizer', role='weight')
        self.fused_act = nn.Identity()

    @classmethod
    def from_float(cls,
                   float_module: nn.Module,
                   quant_desc_input: DescLike = None,
                   quant_desc_weight: DescLike = None) -> nn.Module:
        """Quantized twin of ``float_module`` that shares its Parameter objects and hooks."""
        quant_module = cls.__new__(cls)
        quant_module.__dict__.update({
            key: (value.copy() if isinstance(value, dict) else value)
            for key, value in float_module.__dict__.items()
        })
        quant_module.init_quantizers(quant_desc_input, quant_desc_weight)
        return quant_module
