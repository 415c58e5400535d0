"""How the shared quantization CLI (quantization/cli.py) handles SceneSeg."""
from quantization.cli import ModelAdapter
from .recipe import DEFAULT_CALIB_METHOD, check_sceneseg, sceneseg_recipe

SCENESEG = ModelAdapter(
    name='SceneSeg',
    check_model=check_sceneseg,
    make_recipe=sceneseg_recipe,
    metric_key='sceneseg/pooled/class_average',
    default_method=DEFAULT_CALIB_METHOD,
    table_prefix='sceneseg/pooled/')
