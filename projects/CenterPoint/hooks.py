"""Hooks specific to mmdet3d's CenterPoint."""
from mmengine.hooks import Hook
from torch import nn
from mmengine.model import is_model_wrapper
from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class SeparateHeadInitHook(Hook):
    """Initialise every ``SeparateHead`` before training: ``SeparateHead.init_weights`` (Kaiming
    convs), then the heatmap's last conv as focal-loss heads are (RetinaNet's prior): weights
    ``N(0, 0.01)`` and bias ``init_bias``, so every pixel starts at ``sigmoid(init_bias)``.

    mmdet3d 1.4's ``CenterHead`` keeps its task heads in a plain ``nn.ModuleList``, which stops
    MMEngine's ``init_weights`` recursion, so without this the heatmap bias stays random. And
    mmdet3d 1.4 Kaiming-initialises the heatmap's last conv too, in ``fan_out`` mode: with 1 or 2
    classes per task (nuScenes' 6 tasks) its weights have std 0.33-0.47 and the logits std ~7,
    which drowns ``init_bias`` (first heatmap losses of thousands instead of the focal loss of
    the prior). Runs in ``before_run``; a checkpoint loaded afterwards (``load_from`` /
    ``--resume``) overrides it as usual.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        heads = [m for m in model.modules() if type(m).__name__ == 'SeparateHead']
        for head in heads:
            head.init_weights()
            last = head.heatmap[-1]
            nn.init.normal_(last.weight, std=0.01)
            nn.init.constant_(last.bias, head.init_bias)
        runner.logger.info(f'SeparateHeadInitHook: initialised {len(heads)} SeparateHead(s)')
