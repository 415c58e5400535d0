"""EfficientNet-B0 feature extractor with torchvision's module tree and key names.

torchvision's wheels do not import on this torch build, so the ``features`` part of
``torchvision.models.efficientnet_b0`` is defined here: ``features[0]`` stem (Conv3x3/s2 + BN +
SiLU), ``features[1..7]`` MBConv stages (expand 1x1, depthwise, squeeze-excitation, project 1x1,
stochastic depth on residual blocks in train mode only), ``features[8]`` Conv1x1 + BN + SiLU.
A torchvision ``state_dict`` of ``features`` loads with ``strict=True``.
"""
from typing import List

import torch
from torch import nn

from quantization.nn import Add

#: (expand ratio, kernel, stride, in channels, out channels, blocks) of B0's seven stages
B0_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
STOCHASTIC_DEPTH = 0.2  # the last block's drop probability tends to this, linearly from 0


def make_divisible(channels: float, divisor: int = 8) -> int:
    """torchvision's channel rounding for width multipliers."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


class Conv2dNormActivation(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional SiLU, as torchvision's ``[0]``, ``[1]``, ``[2]``."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 groups: int = 1,
                 activation: bool = True):
        layers = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride, (kernel_size - 1) // 2,
                groups=groups,
                bias=False),
            nn.BatchNorm2d(out_channels)
        ]
        if activation:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gate: ``x * sigmoid(fc2(silu(fc1(mean(x)))))`` with 1x1 convs fc1 / fc2."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class StochasticDepth(nn.Module):
    """Drops a residual branch per sample with probability ``p`` in train mode (survivors scaled
    by ``1 / (1 - p)``); the identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        keep = torch.empty((x.shape[0], ) + (1, ) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * keep.bernoulli_(survival).div_(survival)


class MBConv(nn.Module):
    """Inverted residual block (``block``: expand, depthwise, SE, project)."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel: int,
                 stride: int, drop_prob: float):
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = make_divisible(in_channels * expand_ratio)
        layers: List[nn.Module] = []
        if expanded != in_channels:
            layers.append(Conv2dNormActivation(in_channels, expanded, 1))
        layers += [
            Conv2dNormActivation(expanded, expanded, kernel, stride, groups=expanded),
            SqueezeExcitation(expanded, max(1, in_channels // 4)),
            Conv2dNormActivation(expanded, out_channels, 1, activation=False)
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_prob)
        self.add = Add() if self.use_res_connect else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = self.add(self.stochastic_depth(result), x)
        return result


def efficientnet_b0_features(width_mult: float = 1.0) -> nn.Sequential:
    """torchvision's ``efficientnet_b0().features`` (``width_mult`` < 1 for small variants)."""
    stages = [(e, k, s, make_divisible(i * width_mult), make_divisible(o * width_mult), n)
              for e, k, s, i, o, n in B0_STAGES]
    total_blocks = sum(stage[-1] for stage in stages)
    layers: List[nn.Module] = [Conv2dNormActivation(3, stages[0][3], 3, 2)]
    block_id = 0
    for expand, kernel, stride, in_channels, out_channels, blocks in stages:
        stage = []
        for index in range(blocks):
            stage.append(
                MBConv(in_channels if index == 0 else out_channels, out_channels, expand, kernel,
                       stride if index == 0 else 1, STOCHASTIC_DEPTH * block_id / total_blocks))
            block_id += 1
        layers.append(nn.Sequential(*stage))
    last = stages[-1][4]
    layers.append(Conv2dNormActivation(last, 4 * last, 1))
    return nn.Sequential(*layers)


def feature_channels(width_mult: float = 1.0) -> List[int]:
    """Channels of the five maps the SceneSeg backbone returns (H/2, /4, /8, /16, /32)."""
    return [
        make_divisible(32 * width_mult),
        make_divisible(24 * width_mult),
        make_divisible(40 * width_mult),
        make_divisible(80 * width_mult), 4 * make_divisible(320 * width_mult)
    ]
