"""Quantized 2-D convolution and deconvolution."""
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from ..descriptor import (QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL,
                          QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_TENSOR,
                          QUANT_DESC_8BIT_PER_TENSOR)
from ._quant_layer import DescLike, QuantLayerMixin


@MODELS.register_module()
class QuantConv2d(QuantLayerMixin, nn.Conv2d):
    """``nn.Conv2d`` with a per-tensor input quantizer and a per-output-channel weight quantizer.

    Takes ``nn.Conv2d``'s arguments plus ``quant_desc_input`` / ``quant_desc_weight``.
    """

    default_quant_desc_input = QUANT_DESC_8BIT_PER_TENSOR
    default_quant_desc_weight = QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL
    float_arguments = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding',
                       'dilation', 'groups', 'padding_mode')

    def __init__(self,
                 *args,
                 quant_desc_input: DescLike = None,
                 quant_desc_weight: DescLike = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.init_quantizers(quant_desc_input, quant_desc_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(
            self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias)
        return self.fused_act(out)


@MODELS.register_module()
class QuantConvTranspose2d(QuantLayerMixin, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with input and weight quantizers.

    The weight (C_in, C_out/groups, kH, kW) is quantized per tensor by default: per-channel
    deconvolution weights made TensorRT builds of AWML's CenterPoint fail ("vol == 1 failed",
    "Could not find any implementation"). Per channel along axis 0 is available with
    ``quant_desc_weight=QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL``.
    """

    default_quant_desc_input = QUANT_DESC_8BIT_PER_TENSOR
    default_quant_desc_weight = QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_TENSOR
    float_arguments = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding',
                       'output_padding', 'groups', 'dilation', 'padding_mode')

    def __init__(self,
                 *args,
                 quant_desc_input: DescLike = None,
                 quant_desc_weight: DescLike = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.init_quantizers(quant_desc_input, quant_desc_weight)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        output_padding = self._output_padding(x, output_size, self.stride, self.padding,
                                              self.kernel_size, 2, self.dilation)
        out = F.conv_transpose2d(
            self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias, self.stride,
            self.padding, output_padding, self.groups, self.dilation)
        return self.fused_act(out)
