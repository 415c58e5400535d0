"""How the quantization flows (apis/) handle SceneSeg."""
from apis import ModelAdapter
from .recipe import DEFAULT_CALIB_METHOD, DEFAULT_SKIP_LAYERS, check_sceneseg, sceneseg_recipe

SCENESEG = ModelAdapter(
    name='SceneSeg',
    check_model=check_sceneseg,
    make_recipe=sceneseg_recipe,
    metric_key='sceneseg/pooled/class_average',
    default_method=DEFAULT_CALIB_METHOD,
    default_skip_layers=DEFAULT_SKIP_LAYERS,
    table_prefix='sceneseg/pooled/')
