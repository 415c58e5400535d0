"""tools/deploy.py with CenterPoint's deploy config: two graphs, float and Q/DQ, verified in ONNX
Runtime graph by graph and scored with the dataset's mAP through the Python between them."""
import json
import os
import os.path as osp
from collections import Counter

import numpy as np
import onnx
from mmengine.config import Config

from deployment import OnnxRuntimeModel
from projects.CenterPoint.deploy.split import HEAD_OUTPUTS
from deployment.cpu_int8 import int8_kernels_saturate
from tests.int8_kernels import f32_deconvolution_finding, openvino_runs_int8, runtime_cosine
from tools.deploy import main as deploy_main

ROOT = osp.join(osp.dirname(__file__), '..', '..')
DEPLOY_CFG = osp.join(ROOT, 'configs', 'centerpoint', 'deploy_centerpoint_split.py')
GRAPHS = ('pts_voxel_encoder', 'pts_backbone_neck_head')


def test_split_deploy_from_config(tiny, tmp_path):
    work_dir = str(tmp_path / 'deploy')
    assert deploy_main([
        DEPLOY_CFG, tiny['config'], tiny['checkpoint'], '--work-dir', work_dir, '--cfg-options',
        'quantization.calib_batches=1', 'verification.num_batches=1'
    ]) == 0
    names = set(os.listdir(work_dir))
    for graph in GRAPHS:
        assert {
            f'float_{graph}.onnx', f'int8_tensorrt_{graph}.onnx', f'int8_onnxruntime_{graph}.onnx'
        } <= names
        float_ops = Counter(
            n.op_type for n in onnx.load(osp.join(work_dir, f'float_{graph}.onnx')).graph.node)
        int8_ops = Counter(
            n.op_type
            for n in onnx.load(osp.join(work_dir, f'int8_tensorrt_{graph}.onnx')).graph.node)
        assert float_ops['QuantizeLinear'] == 0 and int8_ops['QuantizeLinear'] > 0
    assert not [n for n in names if '.tmp' in n]
    report = json.load(open(osp.join(work_dir, 'deploy_report.json')))
    # The recipe came from the registered CenterPoint builder: the PFN BatchNorm was folded.
    assert ['pts_voxel_encoder.pfn_layers.0.linear',
            'pts_voxel_encoder.pfn_layers.0.norm'] in report['quantization']['recipe']['bn_pairs']
    # The onnxruntime placement widens scales to one per tensor (largest of its consumers').
    # Random weights give large sums: without VNNI the saturating int16 pairs of the INT8
    # kernels cost more here (lowest cosine 0.963 measured on an AVX2 AMD EPYC).
    for target, min_cosine in (('tensorrt', runtime_cosine(0.999, 0.95)),
                               ('onnxruntime', runtime_cosine(0.99, 0.95))):
        result = report['targets'][target]
        fake_quant = result['verification']['pytorch_fake_quant']
        assert set(fake_quant) == {'pillar_features', *HEAD_OUTPUTS}
        assert min(stats['cosine'] for stats in fake_quant.values()) > min_cosine
        maps = {row['model']: row['values']['det/mAP'] for row in result['metrics']}
        assert set(maps) == {
            'pytorch_float', 'pytorch_fake_quant', 'onnxruntime', 'onnxruntime_unfused'
        }
        assert abs(maps['onnxruntime_unfused'] - maps['pytorch_fake_quant']) <= 0.1
        # Saturating INT8 kernels move this random-weight model's mAP (below 1.5) by up to 0.8;
        # their outputs are bounded by the cosine above.
        if not int8_kernels_saturate():
            assert abs(maps['onnxruntime'] - maps['pytorch_fake_quant']) <= 0.1
    # The lint names exactly the layers the recipe leaves in float (DEFAULT_SKIP_LAYERS: the
    # regression head's two convs and the heatmap head's first conv), input and weight each.
    lint = report['targets']['tensorrt']['lint']
    assert len(lint) == 6 and all('runs in float' in issue for issue in lint)
    assert all(issue.startswith('pts_backbone_neck_head: ') for issue in lint)
    assert report['tensorrt_engine']['trtexec'].count('trtexec --onnx=') == 2
    # OpenVINO: the same three layers in f32, every other one INT8, named as in the model; its
    # INT8 kernels run the placed graph as written and score what PyTorch fake-quant scores.
    openvino = report['targets']['openvino']
    # No quantized layer off INT8; a float island may remain where the shared conv's INT8
    # output is dequantized for the float heads and the INT8 ones alike.
    assert not [finding for finding in openvino['lint'] if '[float-island]' not in finding
                and not f32_deconvolution_finding(finding)]
    layers = {row['layer']: row for row in openvino['precision']}
    assert {name for name, row in layers.items() if not row['quantized']} == {
        'pts_bbox_head.task_heads.0.reg.0.conv', 'pts_bbox_head.task_heads.0.reg.1',
        'pts_bbox_head.task_heads.0.heatmap.0.conv'}
    assert layers['pts_voxel_encoder.pfn_layers.0.linear']['int8']
    assert layers['pts_backbone.blocks.0.0']['graph'] == 'pts_backbone_neck_head'
    assert all(row['int8'] for row in layers.values() if openvino_runs_int8(row))
    as_written = openvino['verification']['onnx_as_written']
    assert min(stats['cosine'] for stats in as_written.values()) > runtime_cosine(0.999, 0.95)
    maps = {row['model']: row['values']['det/mAP'] for row in openvino['metrics']}
    if not int8_kernels_saturate():
        assert abs(maps['openvino'] - maps['pytorch_fake_quant']) <= 0.1

    autoware_package(tiny, work_dir, report)


def autoware_package(tiny, work_dir, report):
    """The files Autoware's node reads: names, tensor order, parameters from the model config,
    and the renamed graph computing what the deployed one computes."""
    folder = osp.join(work_dir, 'autoware')
    assert sorted(os.listdir(folder)) == [
        'centerpoint_ml_package.param.yaml', 'pts_backbone_neck_head_centerpoint.onnx',
        'pts_voxel_encoder_centerpoint.onnx']
    encoder = onnx.load(osp.join(folder, 'pts_voxel_encoder_centerpoint.onnx')).graph
    head = onnx.load(osp.join(folder, 'pts_backbone_neck_head_centerpoint.onnx')).graph
    assert [v.name for v in encoder.input] == ['input_features']
    assert [v.name for v in encoder.output] == ['pillar_features']
    assert [v.name for v in head.input] == ['spatial_features']
    assert [v.name for v in head.output] == list(HEAD_OUTPUTS)  # bound by index
    cfg = Config.fromfile(tiny['config'])
    model = cfg.model
    expected = {
        'class_names': [n.upper() for n in cfg.class_names],
        'point_feature_size': model.pts_voxel_encoder.in_channels,
        'max_voxel_size': model.data_preprocessor.voxel_layer.max_voxels[1],
        'point_cloud_range': [float(v) for v in cfg.point_cloud_range],
        'voxel_size': [float(v) for v in cfg.voxel_size],
        'downsample_factor': model.pts_bbox_head.bbox_coder.out_size_factor,
        'has_variance': False,
        'has_twist': True,
    }
    text = open(osp.join(folder, 'centerpoint_ml_package.param.yaml')).read()
    assert text.startswith('/**:\n  ros__parameters:\n    model_params:\n')
    params = {line.split(': ', 1)[0].strip(): json.loads(line.split(': ', 1)[1])
              for line in text.splitlines()[3:]}
    assert {k: params[k] for k in expected} == expected
    assert params['encoder_in_feature_size'] == report['input_shapes']['decorated_pillars'][2]
    assert 'warning' not in report['package']  # one task: what the node reads
    rng = np.random.default_rng(0)
    pillars = rng.standard_normal((7, *report['input_shapes']['decorated_pillars'][1:]))
    pillars = pillars.astype(np.float32)
    renamed = OnnxRuntimeModel(osp.join(folder, 'pts_voxel_encoder_centerpoint.onnx'))
    deployed = OnnxRuntimeModel(osp.join(work_dir, 'int8_tensorrt_pts_voxel_encoder.onnx'))
    assert np.array_equal(renamed.run({'input_features': pillars})['pillar_features'],
                          deployed.run({'decorated_pillars': pillars})['pillar_features'])
