"""CenterPoint as AWML deploys it: two graphs with Python between them.

1. ``pts_voxel_encoder``: decorated pillar points (N, P, C) -> pillar features (N, C_out);
2. ``pts_backbone_neck_head``: BEV canvas (B, C_out, H, W) -> the head maps in the fixed order
   ``HEAD_OUTPUTS`` (per task).
Voxelization, the feature decoration of PillarFeatureNet, the scatter and box decoding (with
mmdet3d's own ``CenterHead.predict_by_feat``) stay in PyTorch, as in AWML's tools.
"""
import os.path as osp
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from deployment import export_onnx

HEAD_OUTPUTS = ('heatmap', 'reg', 'height', 'dim', 'rot', 'vel')


class PillarEncoderPart(nn.Module):
    """The PFN layers of a PillarFeatureNet: (N, P, C_in) decorated points -> (N, C_out)."""

    def __init__(self, voxel_encoder: nn.Module):
        super().__init__()
        self.pfn_layers = voxel_encoder.pfn_layers

    def forward(self, decorated: torch.Tensor) -> torch.Tensor:
        features = decorated
        for pfn in self.pfn_layers:
            features = pfn(features)
        return features.squeeze(1)


class BackboneNeckHeadPart(nn.Module):
    """Backbone, neck and CenterHead: (B, C, H, W) canvas -> head maps, task by task."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.backbone = model.pts_backbone
        self.neck = model.pts_neck
        self.head = model.pts_bbox_head

    def forward(self, canvas: torch.Tensor):
        task_outputs = self.head(self.neck(self.backbone(canvas)))
        return tuple(task[0][name] for task in task_outputs for name in HEAD_OUTPUTS)


def output_names(num_tasks: int) -> List[str]:
    return [
        name if num_tasks == 1 else f'{name}_{task}' for task in range(num_tasks)
        for name in HEAD_OUTPUTS
    ]


@torch.no_grad()
def decorated_pillars(model: nn.Module, voxel_dict: dict) -> torch.Tensor:
    """The PFN input PillarFeatureNet computes (cluster / voxel-centre offsets, padding masked)."""
    captured = {}
    handle = model.pts_voxel_encoder.pfn_layers[0].register_forward_pre_hook(
        lambda module, inputs: captured.setdefault('decorated', inputs[0]))
    try:
        model.pts_voxel_encoder(voxel_dict['voxels'], voxel_dict['num_points'], voxel_dict['coors'])
    finally:
        handle.remove()
    return captured['decorated']


class SplitCenterPoint:
    """Runs CenterPoint as the two graphs plus the Python between them.

    Args:
        model (nn.Module): The mmdet3d CenterPoint (for voxelization, decoration, scatter and
            decoding; its own encoder / backbone are not used here).
        run_encoder (callable): (N, P, C) numpy decorated pillars -> (N, C_out) numpy.
        run_backbone_neck_head (callable): (B, C, H, W) numpy canvas -> list of numpy head maps.
    """

    def __init__(self, model: nn.Module, run_encoder: Callable, run_backbone_neck_head: Callable):
        self.model = model
        self.run_encoder = run_encoder
        self.run_backbone_neck_head = run_backbone_neck_head
        self.num_tasks = len(model.pts_bbox_head.task_heads)

    @torch.no_grad()
    def test_step(self, batch: dict) -> list:
        """Like ``model.test_step(batch)``: data samples with ``pred_instances_3d``."""
        data = self.model.data_preprocessor(batch, False)
        voxel_dict, samples = data['inputs']['voxels'], data['data_samples']
        decorated = decorated_pillars(self.model, voxel_dict)
        features = torch.from_numpy(np.asarray(self.run_encoder(decorated.numpy())))
        batch_size = int(voxel_dict['coors'][-1, 0].item()) + 1
        canvas = self.model.pts_middle_encoder(features, voxel_dict['coors'], batch_size)
        head_maps = [
            torch.from_numpy(np.asarray(m)) for m in self.run_backbone_neck_head(canvas.numpy())
        ]
        per_task = len(HEAD_OUTPUTS)
        preds_dicts = tuple(
            [dict(zip(HEAD_OUTPUTS, head_maps[task * per_task:(task + 1) * per_task]))]
            for task in range(self.num_tasks))
        results = self.model.pts_bbox_head.predict_by_feat(preds_dicts,
                                                           [sample.metainfo for sample in samples])
        return self.model.add_pred_to_datasample(samples, data_instances_3d=results)


def export_split(model: nn.Module, batch: dict, work_dir: str, prefix: str) -> Dict[str, str]:
    """Export the two graphs (dynamic pillar count, fixed canvas) from an example batch."""
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        voxel_dict = data['inputs']['voxels']
        decorated = decorated_pillars(model, voxel_dict)
        batch_size = int(voxel_dict['coors'][-1, 0].item()) + 1
        features = PillarEncoderPart(model.pts_voxel_encoder)(decorated)
        canvas = model.pts_middle_encoder(features, voxel_dict['coors'], batch_size)
    encoder_path = osp.join(work_dir, f'{prefix}_pts_voxel_encoder.onnx')
    export_onnx(
        PillarEncoderPart(model.pts_voxel_encoder), (decorated, ),
        encoder_path, ['decorated_pillars'], ['pillar_features'],
        dynamic_axes={
            'decorated_pillars': {
                0: 'pillars'
            },
            'pillar_features': {
                0: 'pillars'
            }
        })
    head_path = osp.join(work_dir, f'{prefix}_pts_backbone_neck_head.onnx')
    export_onnx(
        BackboneNeckHeadPart(model), (canvas, ), head_path, ['bev_canvas'],
        output_names(len(model.pts_bbox_head.task_heads)))
    return {'pts_voxel_encoder': encoder_path, 'pts_backbone_neck_head': head_path}


def torch_parts(model: nn.Module) -> Sequence[Callable]:
    """The two parts run in PyTorch (numpy in, numpy out), for comparisons."""
    encoder, rest = PillarEncoderPart(model.pts_voxel_encoder), BackboneNeckHeadPart(model)

    def run_encoder(decorated):
        with torch.no_grad():
            return encoder(torch.from_numpy(decorated)).numpy()

    def run_rest(canvas):
        with torch.no_grad():
            return [t.numpy() for t in rest(torch.from_numpy(canvas))]

    return run_encoder, run_rest
