"""Hooks specific to mmdet3d's CenterPoint."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class SeparateHeadInitHook(Hook):
    """Run ``SeparateHead.init_weights`` (Kaiming convs, heatmap bias ``init_bias``) before
    training.

    mmdet3d 1.4's ``CenterHead`` keeps its task heads in a plain ``nn.ModuleList``, which stops
    MMEngine's ``init_weights`` recursion, so without this the heatmap bias stays random (initial
    heatmap loss ~1000 instead of ~1). Runs in ``before_run``; a checkpoint loaded afterwards
    (``load_from`` / ``--resume``) overrides it as usual.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        heads = [m for m in model.modules() if type(m).__name__ == 'SeparateHead']
        for head in heads:
            head.init_weights()
        runner.logger.info(f'SeparateHeadInitHook: initialised {len(heads)} SeparateHead(s)')
