"""Quantized modules, registered in MMEngine's ``MODELS`` registry under their class names."""
from .elementwise import Add, Concat, Mul, QuantAdd, QuantConcat, QuantMul
from .quant_conv import QuantConv2d, QuantConvTranspose2d
from .quant_linear import QuantLinear

__all__ = [
    'QuantConv2d', 'QuantConvTranspose2d', 'QuantLinear', 'QuantAdd', 'QuantConcat', 'QuantMul',
    'Add', 'Concat', 'Mul'
]
