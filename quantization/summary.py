"""An overview of a quantized model: every quantizer with its role, state, axis and amax."""
from typing import List

from torch import nn

from .markdown import markdown_table
from .tensor_quantizer import TensorQuantizer


def _amax_text(quantizer: TensorQuantizer) -> str:
    if not quantizer.has_amax:
        return 'unset'
    amax = quantizer.amax.detach().float()
    if amax.dim() == 0:
        return f'{amax.item():.4g}'
    return f'{amax.min().item():.4g} .. {amax.max().item():.4g} ({amax.numel()} channels)'


def quant_summary(model: nn.Module) -> str:
    """A Markdown table of every quantizer (role, enabled, axis, bits, amax or its range) and a
    line of counts."""
    rows: List[tuple] = []
    for parent_name, parent in model.named_modules():
        for attribute, child in parent.named_children():
            if not isinstance(child, TensorQuantizer):
                continue
            desc = child.quant_desc
            rows.append((f'{parent_name}.{attribute}' if parent_name else attribute,
                         child.role, 'yes' if child.is_enabled else 'no',
                         'tensor' if desc.axis is None else desc.axis,
                         f'{desc.num_bits}{"u" if desc.unsigned else ""}', _amax_text(child)))
    enabled = sum(row[2] == 'yes' for row in rows)
    unset = sum(row[2] == 'yes' and row[5] == 'unset' for row in rows)
    table = markdown_table(('quantizer', 'role', 'enabled', 'axis', 'bits', 'amax'), rows,
                           'llllrr')
    return f'{table}\n\n{len(rows)} quantizers, {enabled} enabled, {unset} of them without amax'


def print_quant_summary(model: nn.Module) -> None:
    """Print :func:`quant_summary` (pytorch-quantization users know ``print_quant_summary``)."""
    print(quant_summary(model))
