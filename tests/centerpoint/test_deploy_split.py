"""tools/deploy.py with CenterPoint's deploy config: two graphs, float and Q/DQ, verified in ONNX
Runtime graph by graph and scored with the dataset's mAP through the Python between them."""
import json
import os
import os.path as osp
from collections import Counter

import onnx

from projects.CenterPoint.deploy.split import HEAD_OUTPUTS
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
    for target, min_cosine in (('tensorrt', 0.999), ('onnxruntime', 0.99)):
        result = report['targets'][target]
        fake_quant = result['verification']['pytorch_fake_quant']
        assert set(fake_quant) == {'pillar_features', *HEAD_OUTPUTS}
        assert min(stats['cosine'] for stats in fake_quant.values()) > min_cosine
        maps = {row['model']: row['values']['det/mAP'] for row in result['metrics']}
        assert set(maps) == {
            'pytorch_float', 'pytorch_fake_quant', 'onnxruntime', 'onnxruntime_unfused'
        }
        assert abs(maps['onnxruntime_unfused'] - maps['pytorch_fake_quant']) <= 0.1
        assert abs(maps['onnxruntime'] - maps['pytorch_fake_quant']) <= 0.1
    # The lint names exactly the layers the recipe leaves in float (DEFAULT_SKIP_LAYERS: the
    # regression head's two convs and the heatmap head's first conv), input and weight each.
    lint = report['targets']['tensorrt']['lint']
    assert len(lint) == 6 and all('runs in float' in issue for issue in lint)
    assert all(issue.startswith('pts_backbone_neck_head: ') for issue in lint)
    assert report['tensorrt_engine']['trtexec'].count('trtexec --onnx=') == 2
