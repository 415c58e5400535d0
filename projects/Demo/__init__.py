"""The built-in demo: a small conv net on generated shape images (no downloads)."""
from .data import SyntheticShapes
from .metric import ShapeAccuracy
from .model import DemoNet

__all__ = ['SyntheticShapes', 'DemoNet', 'ShapeAccuracy']
