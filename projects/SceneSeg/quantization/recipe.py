"""SceneSeg's quantization recipe: symmetric INT8 everywhere TensorRT can use it.

- Every Conv, ConvTranspose (weights quantized too, per tensor: upstream's PT2E flow leaves the
  five ConvTranspose weights in FP32) and Linear; the backbone's BatchNorms folded.
- The four skip-link adds of the neck / head, the MBConv residual adds and the context's
  ``x * c + x`` add are :class:`~quantization.nn.QuantAdd` (one scale for both inputs), so
  TensorRT fuses each add into the INT8 convolution before it.
- Activations: histogram calibration, entropy amax for PTQ (MSE for QAT's start); weights per
  output channel (max).
"""
from typing import Sequence, Tuple

from torch import nn

from quantization import RECIPE_BUILDERS, QuantRecipe

DEFAULT_CALIB_METHOD = 'entropy'
#: Layers PTQ leaves in float by default: the classifier. With entropy amax that one layer keeps
#: 99.76 % of float's mIoU on the 900 test images; with every layer INT8 PTQ keeps 97.7-98.7 %
#: (entropy, MSE with bias correction). Figures in docs/sceneseg.md.
DEFAULT_SKIP_LAYERS: Tuple[str, ...] = ('SceneSegHead.decode_layer_10',)
#: QAT's start: every layer INT8, MSE amax with bias correction (100.5 % of float after 6 epochs).
QAT_CALIB_METHOD = 'mse'
PARTS = ('Backbone', 'SceneContext', 'SceneNeck', 'SceneSegHead')


def check_sceneseg(model: nn.Module, source: str = 'the model config'):
    """Raise unless ``model`` has SceneSeg's four upstream parts."""
    missing = [part for part in PARTS if not isinstance(getattr(model, part, None), nn.Module)]
    if missing:
        raise ValueError(f'{source} does not build a SceneSeg network (got '
                         f'{type(model).__name__}, missing {missing})')


@RECIPE_BUILDERS.register_module('SceneSegRecipe')
def sceneseg_recipe(model: nn.Module,
                    skip_layers: Sequence[str] = DEFAULT_SKIP_LAYERS) -> QuantRecipe:
    """The recipe for a float SceneSeg model; configs name it ``dict(type='SceneSegRecipe')``."""
    check_sceneseg(model)
    return QuantRecipe(include=[f'{part}*' for part in PARTS], skip_layers=list(skip_layers))
