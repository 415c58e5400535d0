"""Pillar CenterPoint: synthetic lidar data, dataset, metric and quantization recipe."""
from .data.dataset import SyntheticLidarDataset
from .deploy.split import CenterPointSplitExporter
from .hooks import SeparateHeadInitHook
from .metric import CenterDistanceMAP
from .quantization import centerpoint_recipe

__all__ = [
    'SyntheticLidarDataset', 'CenterDistanceMAP', 'CenterPointSplitExporter',
    'SeparateHeadInitHook', 'centerpoint_recipe'
]
