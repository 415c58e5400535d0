"""CenterPoint deployed as two graphs (importing this registers ``CenterPointSplitExporter``)."""
from .split import CenterPointSplitExporter

__all__ = ['CenterPointSplitExporter']
