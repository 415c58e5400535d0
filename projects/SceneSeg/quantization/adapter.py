"""How the quantization flows (apis/) handle SceneSeg.

QAT defaults to every layer INT8, trained from the bias-corrected PTQ model: on the 900 test
images that ends above float, where PTQ needs its two-layer skip list (docs/sceneseg.md).
"""
from apis import ModelAdapter
from .recipe import DEFAULT_CALIB_METHOD, DEFAULT_SKIP_LAYERS, check_sceneseg, sceneseg_recipe

SCENESEG = ModelAdapter(
    name='SceneSeg',
    check_model=check_sceneseg,
    make_recipe=sceneseg_recipe,
    metric_key='sceneseg/pooled/class_average',
    default_method=DEFAULT_CALIB_METHOD,
    default_skip_layers=DEFAULT_SKIP_LAYERS,
    qat_skip_layers=(),
    qat_bias_correction=True,
    table_prefix='sceneseg/pooled/')
