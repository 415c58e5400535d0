"""DemoNet: a small classifier with every layer kind the toolkit quantizes."""
from typing import Dict, List, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn

from quantization.nn import Add, Concat


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


@MODELS.register_module()
class DemoNet(BaseModel):
    """Conv-BN-ReLU stem, a residual block (``Add``), a strided branch brought back by a
    ConvTranspose2d and joined by ``Concat``, then a Linear + BatchNorm1d + ReLU + Linear head.

    ``forward(inputs (N, 3, H, W) in [0, 1], labels (N,) or None, mode)`` returns the loss dict
    (``'loss'``), the class logits (``'predict'`` and ``'tensor'``).
    """

    def __init__(self, width: int = 16, num_classes: int = 6, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.stem = conv_bn_relu(3, width)
        self.block = nn.Sequential(
            conv_bn_relu(width, width), nn.Conv2d(width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width))
        self.add = Add()
        self.down = conv_bn_relu(width, 2 * width, stride=2)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 2, 2, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True))
        self.concat = Concat(dim=1)
        self.fuse = conv_bn_relu(2 * width, 2 * width, stride=2)
        self.head = nn.Sequential(
            nn.Linear(2 * width, 2 * width), nn.BatchNorm1d(2 * width), nn.ReLU(inplace=True),
            nn.Linear(2 * width, num_classes))

    def forward(self,
                inputs: torch.Tensor,
                labels: Union[torch.Tensor, List, None] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        x = self.stem(inputs)
        x = F.relu(self.add(x, self.block(x)))
        x = self.concat([x, self.up(self.down(x))])
        x = self.fuse(x).mean(dim=(2, 3))
        logits = self.head(x)
        if mode == 'loss':
            labels = torch.as_tensor(labels, device=logits.device)
            return {'loss': F.cross_entropy(logits, labels)}
        return logits
