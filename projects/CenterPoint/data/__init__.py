"""Synthetic lidar scenes and their mmdet3d dataset (importing this registers
``SyntheticLidarDataset``)."""
from .dataset import SyntheticLidarDataset

__all__ = ['SyntheticLidarDataset']
