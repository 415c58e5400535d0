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


def _task_outputs(output) -> list:
    """The per-task dicts of a CenterHead output (tuple over tasks of per-level lists)."""
    if isinstance(output, dict):
        return [output]
    return [task for part in output for task in _task_outputs(part)]


def head_distance(got, want) -> torch.Tensor:
    """How far a quantized CenterHead output ``got`` is from the float one ``want``, as
    :func:`quantization.range_learning.learn_ranges` minimises it: the mean over every task's
    maps of a relative squared error. The heatmap compares sigmoid scores at every position
    (false positives count on the background); the box maps (reg, height, dim, rot, vel) are
    weighted by the float model's largest score of the task, where detections read them."""
    errors = []
    for task_got, task_want in zip(_task_outputs(got), _task_outputs(want)):
        score = task_want['heatmap'].sigmoid()
        weights = score.amax(1, keepdim=True)
        errors.append(((task_got['heatmap'].sigmoid() - score)**2).mean()
                      / (score**2).mean().clamp_min(1e-12))
        for key, value in task_want.items():
            if key != 'heatmap':
                errors.append((weights * (task_got[key] - value)**2).sum()
                              / (weights * value**2).sum().clamp_min(1e-12))
    return torch.stack(errors).mean()
