"""SceneSeg (Autoware AutoSeg): upstream-compatible network, dataset, metric and recipe."""
from .data.dataset import SceneSegDataset
from .metric import SceneSegIoU
from .model import SceneSegModel
from .models.sceneseg import SceneSegNetwork
from .quantization import sceneseg_recipe

__all__ = ['SceneSegDataset', 'SceneSegIoU', 'SceneSegModel', 'SceneSegNetwork', 'sceneseg_recipe']
