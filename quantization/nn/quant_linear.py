"""Quantized fully connected layer."""
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from ..descriptor import QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW, QUANT_DESC_8BIT_PER_TENSOR
from ._quant_layer import DescLike, QuantLayerMixin


@MODELS.register_module()
class QuantLinear(QuantLayerMixin, nn.Linear):
    """``nn.Linear`` with a per-tensor input quantizer and a per-row (output feature) weight
    quantizer."""

    default_quant_desc_input = QUANT_DESC_8BIT_PER_TENSOR
    default_quant_desc_weight = QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW
    float_arguments = ('in_features', 'out_features')

    def __init__(self,
                 *args,
                 quant_desc_input: DescLike = None,
                 quant_desc_weight: DescLike = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.init_quantizers(quant_desc_input, quant_desc_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias)
        return self.fused_act(out)
