"""Where CenterPoint's quantization error matters: the float model's object confidence."""
import torch
from torch import nn

from quantization.calibration import default_forward

#: Layers whose error the search leaves unweighted: the heatmap branch, whose false positives lie
#: where the float model sees nothing (weighted, its ranges shrink and car AP falls from 75 to 44
#: with the default skip list).
UNWEIGHTED_LAYERS = ('pts_bbox_head.task_heads.*.heatmap', )


@torch.no_grad()
def object_importance(model: nn.Module, batch) -> torch.Tensor:
    """(N, 1, H, W) weights in [0, 1] on the head's BEV map: the largest sigmoid heatmap score
    over every task's classes, from one forward of ``model`` (float) on ``batch``.

    CenterPoint's losses count the box regression only at object centres and its heatmap near
    them, while most of the BEV canvas is empty road; weighting the range search by this
    confidence makes it fit the activations that detections come from.
    """
    scores = []
    handles = [task.heatmap.register_forward_hook(
        lambda _, __, out: scores.append(out.detach().sigmoid().amax(1, keepdim=True)))
        for task in model.pts_bbox_head.task_heads]
    try:
        default_forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(scores).amax(0)
