"""CenterPoint as AWML deploys it: two graphs with Python between them.

1. ``pts_voxel_encoder``: decorated pillar points (N, P, C) -> pillar features (N, C_out);
2. ``pts_backbone_neck_head``: BEV canvas (B, C_out, H, W) -> the head maps in the fixed order
   ``HEAD_OUTPUTS`` (per task).
Voxelization, the feature decoration of PillarFeatureNet, the scatter and box decoding (with
mmdet3d's own ``CenterHead.predict_by_feat``) stay in PyTorch, as in AWML's tools.
"""
import os.path as osp
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from deployment import DEPLOY_EXPORTERS, GraphSpec, export_onnx
from .autoware import write_package

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
        runners (dict): ``{'pts_voxel_encoder': fn, 'pts_backbone_neck_head': fn}``, each numpy
            inputs by name -> numpy outputs by name (ONNX Runtime sessions, :func:`torch_parts`).
    """

    def __init__(self, model: nn.Module, runners: Dict[str, Callable]):
        self.model = model
        self.runners = runners
        self.num_tasks = len(model.pts_bbox_head.task_heads)

    @torch.no_grad()
    def test_step(self, batch: dict) -> list:
        """Like ``model.test_step(batch)``: data samples with ``pred_instances_3d``."""
        data = self.model.data_preprocessor(batch, False)
        voxel_dict, samples = data['inputs']['voxels'], data['data_samples']
        decorated = decorated_pillars(self.model, voxel_dict).numpy()
        features = self.runners['pts_voxel_encoder']({'decorated_pillars': decorated})
        batch_size = int(voxel_dict['coors'][-1, 0].item()) + 1
        canvas = self.model.pts_middle_encoder(
            torch.from_numpy(np.asarray(features['pillar_features'])), voxel_dict['coors'],
            batch_size)
        head_maps = self.runners['pts_backbone_neck_head']({'bev_canvas': canvas.numpy()})
        names = output_names(self.num_tasks)
        preds_dicts = tuple([{
            field: torch.from_numpy(np.asarray(head_maps[name]))
            for field, name in zip(HEAD_OUTPUTS, names[task * len(HEAD_OUTPUTS):])
        }] for task in range(self.num_tasks))
        results = self.model.pts_bbox_head.predict_by_feat(preds_dicts,
                                                           [sample.metainfo for sample in samples])
        return self.model.add_pred_to_datasample(samples, data_instances_3d=results)


@DEPLOY_EXPORTERS.register_module()
class CenterPointSplitExporter:
    """The deploy pipeline's exporter for CenterPoint: the two graphs of this module (dynamic
    pillar count, dynamic batch), their inputs for a batch (decorated pillars; the canvas the
    model's own encoder and scatter make) and predictions through :class:`SplitCenterPoint`."""

    def __init__(self, onnx_config: Optional[dict] = None, autoware_package: bool = False):
        self.onnx_config = onnx_config
        self.autoware_package = autoware_package

    def package(self, model: nn.Module, work_dir: str,
                onnx_paths: Dict[str, Dict[str, str]]) -> Optional[dict]:
        """With ``autoware_package``: the files Autoware's CenterPoint node reads, from the
        ``tensorrt`` target's graphs (:mod:`projects.CenterPoint.deploy.autoware`)."""
        if not self.autoware_package or 'tensorrt' not in onnx_paths:
            return None
        return write_package(model, work_dir, onnx_paths['tensorrt'])

    @staticmethod
    def _dims(model: nn.Module) -> dict:
        """Graph dimensions from the model: points per pillar, point features after decoration,
        pillars at test time (mmdet3d's ``max_voxels[1]``), PFN channels, canvas height / width."""
        voxel_layer = model.data_preprocessor.voxel_layer
        max_voxels = voxel_layer.max_voxels
        scatter = model.pts_middle_encoder
        return dict(
            points=voxel_layer.max_num_points,
            features=model.pts_voxel_encoder.pfn_layers[0].linear.in_features,
            pillars=max_voxels[1] if isinstance(max_voxels, (list, tuple)) else max_voxels,
            channels=scatter.in_channels,
            height=scatter.ny,
            width=scatter.nx)

    def input_shapes(self, model: nn.Module) -> Dict[str, list]:
        """``onnx_config.input_shapes`` of the two graphs, derived from ``model`` (-1: dynamic)."""
        d = self._dims(model)
        return {
            'decorated_pillars': [-1, d['points'], d['features']],
            'bev_canvas': [-1, d['channels'], d['height'], d['width']]
        }

    def tensorrt_profiles(self, model: nn.Module, max_batch: int = 4) -> Dict[str, list]:
        """TensorRT profiles (min, opt, max) of each graph, derived from ``model``: 1 to the
        test-time pillar limit (opt: half of it), batch 1 to ``max_batch`` (opt: 1)."""
        d = self._dims(model)
        pillar = [d['points'], d['features']]
        canvas = [d['channels'], d['height'], d['width']]
        return {
            'pts_voxel_encoder': [
                dict(decorated_pillars=[[1, *pillar], [max(1, d['pillars'] // 2), *pillar],
                                        [d['pillars'], *pillar]])
            ],
            'pts_backbone_neck_head': [
                dict(bev_canvas=[[1, *canvas], [1, *canvas], [max_batch, *canvas]])
            ]
        }

    def graphs(self, model: nn.Module) -> Dict[str, GraphSpec]:
        heads = output_names(len(model.pts_bbox_head.task_heads))
        return {
            'pts_voxel_encoder':
            GraphSpec(
                PillarEncoderPart(model.pts_voxel_encoder), ['decorated_pillars'],
                ['pillar_features'], {
                    'decorated_pillars': {
                        0: 'pillars'
                    },
                    'pillar_features': {
                        0: 'pillars'
                    }
                }),
            'pts_backbone_neck_head':
            GraphSpec(
                BackboneNeckHeadPart(model), ['bev_canvas'], heads,
                {name: {
                    0: 'batch'
                }
                 for name in ['bev_canvas', *heads]})
        }

    @torch.no_grad()
    def graph_inputs(self, model: nn.Module, batch: dict) -> Dict[str, Dict[str, torch.Tensor]]:
        voxel_dict = model.data_preprocessor(batch, False)['inputs']['voxels']
        decorated = decorated_pillars(model, voxel_dict)
        features = PillarEncoderPart(model.pts_voxel_encoder)(decorated)
        batch_size = int(voxel_dict['coors'][-1, 0].item()) + 1
        canvas = model.pts_middle_encoder(features, voxel_dict['coors'], batch_size)
        return {
            'pts_voxel_encoder': {
                'decorated_pillars': decorated
            },
            'pts_backbone_neck_head': {
                'bev_canvas': canvas
            }
        }

    def predict(self, model: nn.Module, batch: dict, inputs, runners: Dict[str, Callable]) -> list:
        return SplitCenterPoint(model, runners).test_step(batch)


def export_split(model: nn.Module, batch: dict, work_dir: str, prefix: str) -> Dict[str, str]:
    """Export the two graphs as ``<prefix>_<graph>.onnx``; returns their paths by graph."""
    model.eval()
    exporter = CenterPointSplitExporter()
    inputs = exporter.graph_inputs(model, batch)
    paths = {}
    for graph, spec in exporter.graphs(model).items():
        paths[graph] = osp.join(work_dir, f'{prefix}_{graph}.onnx')
        export_onnx(
            spec.module,
            tuple(inputs[graph][n] for n in spec.input_names),
            paths[graph],
            spec.input_names,
            spec.output_names,
            dynamic_axes=spec.dynamic_axes or None)
    return paths


def torch_parts(model: nn.Module) -> Dict[str, Callable]:
    """The two graphs run in PyTorch (numpy in and out), as :class:`SplitCenterPoint` runners."""
    return {
        graph: spec.torch_runner()
        for graph, spec in CenterPointSplitExporter().graphs(model).items()
    }
