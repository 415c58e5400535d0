"""ReLU fusion (CUDA-CenterPoint's ``layer_fusion_relu``): Conv(+folded BN)+ReLU as one unit.

The ReLU moves into the quantized layer's ``fused_act`` and its old place becomes
``nn.Identity``, so anything quantized after the layer sees post-ReLU values and the exported
graph has Q/DQ only after the ReLU, where TensorRT expects them.
"""
from typing import List, Optional, Sequence, Tuple

from torch import nn

from ..module_paths import get_module, set_module
from ..nn._quant_layer import QuantLayerMixin
from .bn import runs_before


def find_relu_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """(quantized layer name, ReLU name) pairs with nothing but ``nn.Identity`` between.

    Recognised layouts: ``nn.Sequential`` children (an Identity is a folded BN) and mmcv's
    ``ConvModule`` whose norm is folded (or absent) and whose activation is a ReLU.
    """
    pairs = []
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        if isinstance(module, nn.Sequential):
            layer_name = None
            for child_name, child in module.named_children():
                if isinstance(child, QuantLayerMixin):
                    layer_name = child_name
                elif isinstance(child, nn.ReLU) and layer_name is not None:
                    pairs.append((prefix + layer_name, prefix + child_name))
                    layer_name = None
                elif not isinstance(child, nn.Identity):
                    layer_name = None
        conv, act = getattr(module, 'conv', None), getattr(module, 'activate', None)
        norm_name = getattr(module, 'norm_name', None)
        norm = getattr(module, norm_name, None) if norm_name else None
        order = tuple(getattr(module, 'order', ()))
        if (isinstance(conv, QuantLayerMixin) and isinstance(act, nn.ReLU)
                and (norm is None or isinstance(norm, nn.Identity))
                and runs_before(order, 'conv', 'act')):
            pairs.append((prefix + 'conv', prefix + 'activate'))
    return pairs


def fuse_relu(model: nn.Module, pairs: Optional[Sequence[Tuple[str, str]]] = None) -> int:
    """Move ReLUs into the quantized layers before them.

    Args:
        model (nn.Module): Changed in place; run after :func:`quantize_model` and
            :func:`fuse_bn` (a ReLU behind an unfolded BN is not fused).
        pairs (Sequence[tuple], optional): ``(layer name, ReLU name)``; None finds them.

    Returns:
        int: How many pairs were fused.
    """
    pairs = find_relu_pairs(model) if pairs is None else list(pairs)
    for layer_name, relu_name in pairs:
        layer = get_module(model, layer_name)
        if not isinstance(layer, QuantLayerMixin):
            raise TypeError(f'{layer_name} ({type(layer).__name__}) is not a quantized layer; '
                            'run quantize_model before fuse_relu')
        relu = get_module(model, relu_name)
        if not isinstance(relu, nn.ReLU):
            raise TypeError(f'{relu_name} is {type(relu).__name__}, not nn.ReLU')
        layer.fused_act = relu
        set_module(model, relu_name, nn.Identity())
    return len(pairs)
