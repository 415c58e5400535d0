"""SceneSeg as an MMEngine model: upstream normalisation, loss and module names."""
from typing import List, Optional, Tuple

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch.nn import functional as F

from .data.layout import IGNORE_INDEX
from .models.sceneseg import SceneSegNetwork

#: upstream's normalisation (ImageNet mean / std) on 0..255 RGB
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
CLASS_WEIGHT_SMOOTHING = 5120  # pixels, upstream's per-image class weight pixels / (count + 5120)


def class_weights(gt_mask: torch.Tensor, num_classes: int = 3) -> torch.Tensor:
    """Upstream's per-image weights ``pixels / (count_c + 5120)`` of a (H, W) mask."""
    valid = gt_mask[gt_mask != IGNORE_INDEX]
    counts = torch.bincount(valid.flatten(), minlength=num_classes)[:num_classes].float()
    return gt_mask.numel() / (counts + CLASS_WEIGHT_SMOOTHING)


def weighted_cross_entropy(logits: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """Mean over images of cross-entropy with each image's own class weights (upstream trains
    with batch 1, so this is its loss for any batch size)."""
    losses = [
        F.cross_entropy(
            logits[i:i + 1],
            gt_masks[i:i + 1],
            weight=class_weights(gt_masks[i]).to(logits.dtype),
            ignore_index=IGNORE_INDEX) for i in range(len(logits))
    ]
    return torch.stack(losses).mean()


@MODELS.register_module('SceneSeg')
class SceneSegModel(BaseModel):
    """:class:`SceneSegNetwork` with a data preprocessor; its children keep upstream's names
    (``Backbone``, ``SceneContext``, ``SceneNeck``, ``SceneSegHead``), so an upstream
    ``state_dict`` loads into this model as it is.

    Modes: ``'tensor'`` -> (B, 3, H, W) logits; ``'loss'`` -> ``{'loss': weighted CE}``;
    ``'predict'`` -> the data samples (``BaseDataElement``) with ``pred_mask`` (H, W) set.
    """

    def __init__(self,
                 width_mult: float = 1.0,
                 decoder_scale: int = 1,
                 context_grid: Tuple[int, int] = (10, 20),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        data_preprocessor = data_preprocessor or dict(
            type='ImgDataPreprocessor', mean=MEAN, std=STD)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        network = SceneSegNetwork(width_mult, decoder_scale, context_grid)
        for name, module in network.named_children():
            self.add_module(name, module)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return SceneSegNetwork.forward(self, images)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[dict]] = None,
                mode: str = 'tensor'):
        logits = self.logits(inputs)
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            gt = torch.stack([s.gt_mask for s in data_samples]).to(logits.device)
            return {'loss': weighted_cross_entropy(logits, gt)}
        if mode == 'predict':
            for sample, prediction in zip(data_samples, logits.argmax(1)):
                sample.pred_mask = prediction
            return data_samples
        raise ValueError(f'SceneSegModel: unknown mode {mode!r}')
