"""The files Autoware's ``autoware_lidar_centerpoint`` node reads, as TIER IV's AWML deploys them.

``<work_dir>/autoware/`` holds the two INT8 graphs of the ``tensorrt`` placement under the node's
file and tensor names, and ``centerpoint_ml_package.param.yaml`` with the model parameters the
node reads, derived from the model:

- ``pts_voxel_encoder_centerpoint.onnx``: ``input_features`` (pillars, points per pillar,
  ``encoder_in_feature_size``) -> ``pillar_features`` (pillars, channels);
- ``pts_backbone_neck_head_centerpoint.onnx``: ``spatial_features`` (batch, channels, H, W) ->
  ``heatmap, reg, height, dim, rot, vel``. The node binds these by index, in this order, for a
  head of one task (all classes in one heatmap, as AWML trains it). A multi-task head has the
  six outputs per task, task after task (``heatmap_0 ... vel_0, heatmap_1 ...``); the node reads
  one task only, so the report warns.
"""
import json
import os
import os.path as osp
from typing import Dict

import onnx
from torch import nn

from quantization.fileio import atomic_output, write_text_atomic

FILES = {
    'pts_voxel_encoder': 'pts_voxel_encoder_centerpoint.onnx',
    'pts_backbone_neck_head': 'pts_backbone_neck_head_centerpoint.onnx',
}
#: our input names -> the node's, per graph (the outputs already have the node's names)
INPUT_NAMES = {
    'pts_voxel_encoder': {'decorated_pillars': 'input_features'},
    'pts_backbone_neck_head': {'bev_canvas': 'spatial_features'},
}
PARAM_FILE = 'centerpoint_ml_package.param.yaml'


def model_params(model: nn.Module) -> dict:
    """``model_params`` of ``centerpoint_ml_package.param.yaml`` for a pillar CenterPoint."""
    voxel_layer = model.data_preprocessor.voxel_layer
    max_voxels = voxel_layer.max_voxels
    head = model.pts_bbox_head
    common_heads = head.task_heads[0].heads
    encoder = model.pts_voxel_encoder
    decorated = int(encoder.pfn_layers[0].linear.in_features)
    # PillarFeatureNet decorates each point with its offsets from the cluster and pillar
    # centres (3 each) and its distance (1)
    added = 3 * encoder._with_cluster_center + 3 * encoder._with_voxel_center + \
        encoder._with_distance
    return {
        'class_names': [name.upper() for names in head.class_names for name in names],
        'point_feature_size': decorated - added,
        'max_voxel_size': int(max_voxels[1] if isinstance(max_voxels, (list, tuple)) else
                              max_voxels),
        'point_cloud_range': [float(v) for v in voxel_layer.point_cloud_range],
        'voxel_size': [float(v) for v in voxel_layer.voxel_size],
        'downsample_factor': int(head.bbox_coder.out_size_factor),
        'encoder_in_feature_size': decorated,
        'has_variance': False,
        'has_twist': 'vel' in common_heads,
    }


def param_yaml(params: dict) -> str:
    """The ROS 2 parameter file: ``/**: ros__parameters: model_params: ...``."""
    lines = ['/**:', '  ros__parameters:', '    model_params:']
    lines += [f'      {key}: {json.dumps(value)}' for key, value in params.items()]
    return '\n'.join(lines) + '\n'


def rename_inputs(source: str, destination: str, renames: Dict[str, str]) -> None:
    """Copy an ONNX file with its graph inputs renamed (and every node reading them)."""
    model = onnx.load(source)
    graph = model.graph
    for value in list(graph.input) + list(graph.value_info):
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = renames.get(name, name)
    onnx.checker.check_model(model)
    with atomic_output(destination, '.onnx') as tmp_path:
        onnx.save(model, tmp_path)


def write_package(model: nn.Module, work_dir: str, onnx_paths: Dict[str, str]) -> dict:
    """Write ``work_dir/autoware/`` from the ``tensorrt``-placement graphs ``onnx_paths`` (by
    graph); returns its files and, for a multi-task head, a warning."""
    folder = osp.join(work_dir, 'autoware')
    os.makedirs(folder, exist_ok=True)
    files = {}
    for graph, name in FILES.items():
        files[name] = osp.join(folder, name)
        rename_inputs(onnx_paths[graph], files[name], INPUT_NAMES[graph])
    params = model_params(model)
    files[PARAM_FILE] = osp.join(folder, PARAM_FILE)
    write_text_atomic(files[PARAM_FILE], param_yaml(params))
    package = {'files': files, 'model_params': params}
    tasks = len(model.pts_bbox_head.task_heads)
    if tasks > 1:
        package['warning'] = (f'the head has {tasks} tasks: its outputs are the six maps per '
                              'task, task after task; autoware_lidar_centerpoint reads one task')
    return package
