"""What every quantized layer shares: how it is built from a float layer, and (for weight layers)
an input and a weight quantizer and a fused activation."""
from typing import Optional, Tuple, Union

from torch import nn

from ..descriptor import QuantDescriptor, as_descriptor
from ..tensor_quantizer import TensorQuantizer

DescLike = Optional[Union[QuantDescriptor, dict]]


def check_replaceable(float_module: nn.Module, name: str):
    """Refuse a float module with forward hooks: its quantized twin is a new module, and hooks
    registered on the old one would silently stop running."""
    if float_module._forward_hooks or float_module._forward_pre_hooks:
        raise ValueError(f'{name or type(float_module).__name__}: has forward hooks, which a '
                         'quantized replacement would not run; register them after quantize_model')


def label_quantizers(quant_module: nn.Module, name: str):
    """Give the quantizers of a quant module built for the layer ``name`` their full paths."""
    for child_name, child in quant_module.named_children():
        if isinstance(child, TensorQuantizer):
            child.name = f'{name}.{child_name}' if name else child_name


class QuantLayerMixin:
    """Adds ``input_quantizer``, ``weight_quantizer`` and ``fused_act`` to a float layer.

    Subclasses set ``default_quant_desc_input`` and ``default_quant_desc_weight``, and
    ``float_arguments``: the constructor arguments that :meth:`from_float` reads from the float
    layer's attributes. ``fused_act`` is an ``nn.Identity`` until
    :func:`quantization.fusion.fuse_relu` moves a following ReLU into the layer, so that
    Conv(+BN)+ReLU is one unit.
    """

    default_quant_desc_input: QuantDescriptor
    default_quant_desc_weight: QuantDescriptor
    float_arguments: Tuple[str, ...]

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
                   quant_desc_weight: DescLike = None,
                   name: str = '') -> nn.Module:
        """Quantized twin of ``float_module`` (the layer at path ``name``).

        Built from the float layer's constructor arguments, without allocating a weight, then
        given the float layer's own ``weight`` and ``bias`` Parameter objects (no copy, so an
        optimizer holding them keeps working) and its train / eval mode.
        """
        check_replaceable(float_module, name)
        arguments = {key: getattr(float_module, key) for key in cls.float_arguments}
        quant_module = cls(**arguments,
                           bias=float_module.bias is not None,
                           device='meta',
                           quant_desc_input=quant_desc_input,
                           quant_desc_weight=quant_desc_weight)
        quant_module.weight = float_module.weight
        quant_module.bias = float_module.bias
        quant_module.train(float_module.training)
        label_quantizers(quant_module, name)
        return quant_module
