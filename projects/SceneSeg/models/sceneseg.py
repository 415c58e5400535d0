"""SceneSegNetwork: Autoware AutoSeg's 3-class scene segmentation network, upstream module tree.

``logits = SceneSegHead(SceneNeck(SceneContext(f[4]), f), f)`` with ``f = Backbone(image)``;
an upstream ``state_dict`` (``../shared/reference/sceneseg_state_dict.tsv``) loads with
``strict=True``. Differences from upstream, none of which changes a logit: batches of any size
(upstream reshapes the context to batch 1), and the element-wise adds / the context multiply are
modules (:class:`~quantization.nn.Add`, :class:`~quantization.nn.Mul`) so the quantization
passes quantize their inputs (one shared scale for each add). ``decoder_scale`` and
``width_mult`` shrink the model for the synthetic data; ``context_grid`` is the H/32 x W/32
grid of the input size (10 x 20 at upstream's 320 x 640).
"""
from typing import List, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from quantization.nn import Add, Mul
from .efficientnet import efficientnet_b0_features, feature_channels

#: upstream channel counts: context convs, neck decoders, head decoders
CONTEXT_CHANNELS = (128, 256, 512, 1280)
NECK_CHANNELS = (1280, 768, 512, 256)
HEAD_CHANNELS = (256, 128, 64)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)  # the exact (erf) form, as upstream


class Backbone(nn.Module):
    """EfficientNet-B0 features; returns the maps after ``encoder[0, 2, 3, 4, 8]``."""

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        self.encoder = efficientnet_b0_features(width_mult)

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        features, x = [], image
        for index, stage in enumerate(self.encoder):
            x = stage(x)
            if index in (0, 2, 3, 4, 8):
                features.append(x)
        return features


class SceneContext(nn.Module):
    """Global context gate on the H/32 map: ``x * c + x`` with ``c`` from its mean vector."""

    def __init__(self, channels: int, context_grid: Tuple[int, int], scale: int = 1):
        super().__init__()
        hidden = 800 // scale
        self.context_grid = tuple(context_grid)
        grid_cells = self.context_grid[0] * self.context_grid[1]
        self.context_layer_0 = nn.Linear(channels, hidden)
        self.context_layer_1 = nn.Linear(hidden, hidden)
        self.context_layer_2 = nn.Linear(hidden, grid_cells)
        convs = [1] + [c // scale for c in CONTEXT_CHANNELS[:-1]] + [channels]
        self.context_layer_3 = nn.Conv2d(convs[0], convs[1], 3, 1, 1)
        self.context_layer_4 = nn.Conv2d(convs[1], convs[2], 3, 1, 1)
        self.context_layer_5 = nn.Conv2d(convs[2], convs[3], 3, 1, 1)
        self.context_layer_6 = nn.Conv2d(convs[3], convs[4], 3, 1, 1)
        self.dropout = nn.Dropout(p=0.25)
        self.gate = Mul()
        self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.context_grid:
            raise ValueError(f'SceneContext expects a {self.context_grid} grid at H/32 (input '
                             f'{self.context_grid[0] * 32} x {self.context_grid[1] * 32}), got '
                             f'{tuple(x.shape[2:])}')
        vector = torch.mean(x, dim=(2, 3))
        vector = _gelu(self.dropout(self.context_layer_0(vector)))
        vector = _gelu(self.dropout(self.context_layer_1(vector)))
        vector = torch.sigmoid(self.dropout(self.context_layer_2(vector)))
        context = vector.reshape(x.shape[0], 1, *self.context_grid)
        for layer in (self.context_layer_3, self.context_layer_4, self.context_layer_5,
                      self.context_layer_6):
            context = _gelu(layer(context))
        return self.add(self.gate(context, x), x)


class _UpBlock(nn.Module):
    """ConvTranspose x2 (+ a 1x1 skip link added), then two 3x3 convs with GELU."""

    @staticmethod
    def decode(x: torch.Tensor, first: nn.Module, second: nn.Module) -> torch.Tensor:
        return _gelu(second(_gelu(first(x))))


class SceneNeck(_UpBlock):
    """Three upsampling blocks from H/32 to H/4 with skip links to f[3], f[2], f[1]."""

    def __init__(self, skip_channels: Sequence[int], channels: Sequence[int]):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.upsample_layer_0 = nn.ConvTranspose2d(c0, c0, 2, 2)
        self.skip_link_layer_0 = nn.Conv2d(skip_channels[3], c0, 1)
        self.decode_layer_0 = nn.Conv2d(c0, c1, 3, 1, 1)
        self.decode_layer_1 = nn.Conv2d(c1, c1, 3, 1, 1)
        self.upsample_layer_1 = nn.ConvTranspose2d(c1, c1, 2, 2)
        self.skip_link_layer_1 = nn.Conv2d(skip_channels[2], c1, 1)
        self.decode_layer_2 = nn.Conv2d(c1, c2, 3, 1, 1)
        self.decode_layer_3 = nn.Conv2d(c2, c2, 3, 1, 1)
        self.upsample_layer_2 = nn.ConvTranspose2d(c2, c2, 2, 2)
        self.skip_link_layer_2 = nn.Conv2d(skip_channels[1], c2, 1)
        self.decode_layer_4 = nn.Conv2d(c2, c2, 3, 1, 1)
        self.decode_layer_5 = nn.Conv2d(c2, c3, 3, 1, 1)
        self.add_0, self.add_1, self.add_2 = Add(), Add(), Add()

    def forward(self, x: torch.Tensor, features: List[torch.Tensor]) -> torch.Tensor:
        x = self.add_0(self.upsample_layer_0(x), self.skip_link_layer_0(features[3]))
        x = self.decode(x, self.decode_layer_0, self.decode_layer_1)
        x = self.add_1(self.upsample_layer_1(x), self.skip_link_layer_1(features[2]))
        x = self.decode(x, self.decode_layer_2, self.decode_layer_3)
        x = self.add_2(self.upsample_layer_2(x), self.skip_link_layer_2(features[1]))
        return self.decode(x, self.decode_layer_4, self.decode_layer_5)


class SceneSegHead(_UpBlock):
    """Two upsampling blocks from H/4 to full resolution (skip link to f[0]), 3 class logits."""

    def __init__(self, skip_channels: Sequence[int], channels: Sequence[int], num_classes: int = 3):
        super().__init__()
        c3, c4, c5 = channels
        self.upsample_layer_3 = nn.ConvTranspose2d(c3, c3, 2, 2)
        self.skip_link_layer_3 = nn.Conv2d(skip_channels[0], c3, 1)
        self.decode_layer_6 = nn.Conv2d(c3, c3, 3, 1, 1)
        self.decode_layer_7 = nn.Conv2d(c3, c4, 3, 1, 1)
        self.upsample_layer_4 = nn.ConvTranspose2d(c4, c4, 2, 2)
        self.decode_layer_8 = nn.Conv2d(c4, c4, 3, 1, 1)
        self.decode_layer_9 = nn.Conv2d(c4, c5, 3, 1, 1)
        self.decode_layer_10 = nn.Conv2d(c5, num_classes, 3, 1, 1)
        self.add_3 = Add()

    def forward(self, x: torch.Tensor, features: List[torch.Tensor]) -> torch.Tensor:
        x = self.add_3(self.upsample_layer_3(x), self.skip_link_layer_3(features[0]))
        x = self.decode(x, self.decode_layer_6, self.decode_layer_7)
        x = self.decode(self.upsample_layer_4(x), self.decode_layer_8, self.decode_layer_9)
        return self.decode_layer_10(x)


class SceneSegNetwork(nn.Module):
    """(B, 3, H, W) normalised RGB -> (B, 3, H, W) logits (background, foreground, road).

    Args:
        width_mult (float): EfficientNet-B0 width multiplier. Defaults to 1.0 (upstream).
        decoder_scale (int): Divides the context, neck and head widths. Defaults to 1 (upstream).
        context_grid (tuple): H/32, W/32 of the input. Defaults to (10, 20) (320 x 640).
    """

    def __init__(self,
                 width_mult: float = 1.0,
                 decoder_scale: int = 1,
                 context_grid: Tuple[int, int] = (10, 20)):
        super().__init__()
        skips = feature_channels(width_mult)
        neck = [skips[4]] + [c // decoder_scale for c in NECK_CHANNELS[1:]]
        self.Backbone = Backbone(width_mult)
        self.SceneContext = SceneContext(skips[4], context_grid, decoder_scale)
        self.SceneNeck = SceneNeck(skips, neck)
        self.SceneSegHead = SceneSegHead(skips, [neck[3]] +
                                         [c // decoder_scale for c in HEAD_CHANNELS[1:]])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.Backbone(image)
        return self.SceneSegHead(self.SceneNeck(self.SceneContext(features[4]), features), features)
