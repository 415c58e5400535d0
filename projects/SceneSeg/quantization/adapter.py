"""How the quantization flows (apis/) handle SceneSeg.

PTQ defaults to entropy amax with the classifier in float; QAT to every layer INT8, trained from
the bias-corrected MSE PTQ model. On the 900 test images both meet their goals
(docs/sceneseg.md).
"""
from apis import ModelAdapter
from quantization.range_learning import softmax_kl
from .recipe import (DEFAULT_CALIB_METHOD, DEFAULT_SKIP_LAYERS, QAT_CALIB_METHOD, check_sceneseg,
                     sceneseg_recipe)

SCENESEG = ModelAdapter(
    name='SceneSeg',
    check_model=check_sceneseg,
    make_recipe=sceneseg_recipe,
    metric_key='sceneseg/pooled/class_average',
    default_method=DEFAULT_CALIB_METHOD,
    default_skip_layers=DEFAULT_SKIP_LAYERS,
    qat_skip_layers=(),
    qat_bias_correction=True,
    qat_method=QAT_CALIB_METHOD,
    table_prefix='sceneseg/pooled/',
    output_module='SceneSegHead',
    output_distance=softmax_kl)
