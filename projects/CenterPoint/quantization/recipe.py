"""CenterPoint's quantization recipe (pillar CenterPoint from mmdet3d).

- Quantized: the PFN Linear layers (inside ``pts_voxel_encoder``; the feature decoration before
  them, the voxelization and the scatter stay float, outside the quantized graph), every Conv and
  ConvTranspose of ``pts_backbone`` / ``pts_neck`` and the head convs of ``pts_bbox_head``.
- BN folding: Conv+BN pairs are found in ``nn.Sequential`` and mmcv ConvModules; the PFN's
  BatchNorm1d, registered *before* its Linear in mmdet3d's PFNLayer, is added explicitly.
- SECONDFPN concatenates its upsampled maps with a functional ``torch.cat``: the
  ``'SECONDFPNConcat'`` preparation gives the neck a :class:`~quantization.nn.Concat`, which the
  replacement pass turns into a QuantConcat with one shared input scale (as CUDA-BEVFusion does
  for every add/concat), so TensorRT keeps INT8 through it.
- Calibration as CUDA-CenterPoint: histogram activations, MSE amax, per-channel max weights.
"""
import types
from typing import List, Sequence, Tuple

import torch
from torch import nn

from quantization import MODEL_PREPARATIONS, RECIPE_BUILDERS, QuantRecipe
from quantization.nn import Concat

QUANTIZED_PARTS = ('pts_voxel_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head')
DEFAULT_CALIB_METHOD = 'mse'
#: Layers left in float by default, from ``centerpoint_quantization.py sensitivity`` on the small
#: synthetic model: the three layers the greedy search for a 0.3-point budget keeps in float,
#: the regression head's two convs and the heatmap's first conv (figures in docs/centerpoint.md).
DEFAULT_SKIP_LAYERS: Tuple[str, ...] = ('pts_bbox_head.task_heads.*.reg.*',
                                        'pts_bbox_head.task_heads.*.heatmap.0.conv')


def _fpn_forward_with_concat(self, x: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """SECONDFPN.forward with the concatenation as a module (``self.concat``)."""
    ups = [deblock(x[i]) for i, deblock in enumerate(self.deblocks)]
    return [self.concat(ups) if len(ups) > 1 else ups[0]]


@MODEL_PREPARATIONS.register_module('SECONDFPNConcat')
def secondfpn_concat(model: nn.Module) -> int:
    """Give every SECONDFPN a ``concat`` module used by its forward; returns how many."""
    changed = 0
    for module in model.modules():
        if type(module).__name__ == 'SECONDFPN' and not hasattr(module, 'concat'):
            module.concat = Concat(dim=1)
            module.forward = types.MethodType(_fpn_forward_with_concat, module)
            changed += 1
    return changed


def pfn_bn_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """(Linear, BatchNorm1d) of every mmdet3d PFNLayer, in data-flow order."""
    return [(f'{name}.linear', f'{name}.norm') for name, module in model.named_modules()
            if type(module).__name__ == 'PFNLayer' and isinstance(module.norm, nn.BatchNorm1d)]


def check_centerpoint(model: nn.Module, source: str = 'the model config'):
    """Raise unless ``model`` is a pillar CenterPoint with the parts the recipe quantizes."""
    missing = [part for part in QUANTIZED_PARTS if getattr(model, part, None) is None]
    if type(model).__name__ != 'CenterPoint' or missing:
        raise ValueError(f'{source} does not build a pillar CenterPoint '
                         f'(got {type(model).__name__}, missing {missing or "nothing"})')


@RECIPE_BUILDERS.register_module('CenterPointRecipe')
def centerpoint_recipe(model: nn.Module,
                       skip_layers: Sequence[str] = DEFAULT_SKIP_LAYERS) -> QuantRecipe:
    """The recipe for ``model`` (a float mmdet3d CenterPoint); configs name it
    ``dict(type='CenterPointRecipe', skip_layers=[...])``."""
    check_centerpoint(model)
    return QuantRecipe(
        include=list(QUANTIZED_PARTS),
        bn_pairs=pfn_bn_pairs(model),
        skip_layers=list(skip_layers),
        preparations=['SECONDFPNConcat'])
