"""How the quantization flows (apis/) handle CenterPoint."""
from mmengine.config import Config

from apis import ModelAdapter
from .importance import UNWEIGHTED_LAYERS, head_distance, object_importance
from .recipe import DEFAULT_CALIB_METHOD, DEFAULT_SKIP_LAYERS, centerpoint_recipe, check_centerpoint


def qat_schedule(cfg: Config, lr: float, epochs: int, iters_per_epoch: int):
    """CUDA-CenterPoint's one-cycle QAT schedule: from ``lr / 10`` up to ``lr`` over the first
    40 % of the iterations, then cosine down to ``lr / 1000``.

    Built from LinearLR + CosineAnnealingLR: MMEngine's OneCycleLR keeps a bound method in its
    state, which ``torch.load(weights_only=True)`` rightly refuses, so its checkpoints would not
    resume.
    """
    cfg.optim_wrapper.optimizer.lr = lr
    total = max(2, epochs * iters_per_epoch)
    peak = min(max(1, round(0.4 * total)), total - 1)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=peak),
        dict(
            type='CosineAnnealingLR',
            eta_min=lr / 1000,
            by_epoch=False,
            begin=peak,
            end=total,
            T_max=total - peak),
    ]


CENTERPOINT = ModelAdapter(
    name='CenterPoint',
    check_model=check_centerpoint,
    make_recipe=centerpoint_recipe,
    metric_key='det/mAP',
    default_method=DEFAULT_CALIB_METHOD,
    default_skip_layers=DEFAULT_SKIP_LAYERS,
    qat_optimizer=qat_schedule,
    importance=object_importance,
    unweighted_layers=UNWEIGHTED_LAYERS,
    output_module='pts_bbox_head',
    output_distance=head_distance)
