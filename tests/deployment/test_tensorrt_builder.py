import importlib.util

import numpy as np
import pytest

from deployment.tensorrt_builder import (TensorRTUnavailable, build_engine, polygraphy_command,
                                         profile_inputs, trtexec_command)

HAS_TENSORRT = importlib.util.find_spec('tensorrt') is not None


def test_trtexec_command_has_profile_and_precisions():
    command = trtexec_command('m.onnx', 'm.engine', 1024, True,
                              [dict(inputs=[[1, 3, 32, 32], [4, 3, 32, 32], [8, 3, 32, 32]])])
    assert command.startswith('trtexec --onnx=m.onnx --saveEngine=m.engine --int8')
    assert '--memPoolSize=workspace:1024M' in command and '--fp16' in command
    assert '--minShapes=inputs:1x3x32x32' in command and '--maxShapes=inputs:8x3x32x32' in command


@pytest.mark.skipif(HAS_TENSORRT, reason='TensorRT is installed here')
def test_missing_tensorrt_is_one_clear_error(tmp_path):
    with pytest.raises(TensorRTUnavailable, match='TensorRT is not installed'):
        build_engine('m.onnx', str(tmp_path / 'm.engine'))
    assert not (tmp_path / 'm.engine').exists()


@pytest.mark.skipif(
    not HAS_TENSORRT, reason='TensorRT is not installed (optional extra; needs a '
    'GPU machine)')
def test_engine_matches_onnxruntime(tmp_path):
    import torch
    from deployment import OnnxRuntimeModel, export_onnx
    from deployment.tensorrt_builder import TensorRTEngine
    from quantization import CalibrationManager, QuantRecipe
    from projects.Demo import DemoNet
    model = DemoNet().eval()
    QuantRecipe().apply(model)
    x = torch.rand(4, 3, 32, 32)
    CalibrationManager(model, progress=False).calibrate([x], 1, 'max')
    onnx_path = export_onnx(model, (x, ), str(tmp_path / 'm.onnx'), ['inputs'], ['logits'])
    engine = build_engine(onnx_path, str(tmp_path / 'm.engine'))
    trt_out = TensorRTEngine(engine).run({"inputs": x.numpy()})["logits"]
    ort_out = OnnxRuntimeModel(onnx_path).run({'inputs': x.numpy()})['logits']
    np.testing.assert_allclose(trt_out, ort_out, atol=0.05 * np.abs(ort_out).max())


def test_polygraphy_command_and_profile_inputs():
    profile = dict(inputs=[[1, 3, 32, 32], [4, 3, 32, 32], [8, 3, 32, 32]])
    command = polygraphy_command('m.onnx', [profile])
    assert command == ('polygraphy run m.onnx --onnxrt --trt --int8 --fp16 '
                       '--trt-min-shapes inputs:[1,3,32,32] --trt-opt-shapes inputs:[4,3,32,32] '
                       '--trt-max-shapes inputs:[8,3,32,32] --input-shapes inputs:[4,3,32,32]')
    assert [profile_inputs(profile, i)['inputs'].shape for i in range(3)] == [
        (1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32)]


@pytest.mark.skipif(
    not HAS_TENSORRT, reason='TensorRT is not installed (optional extra; needs a '
    'GPU machine)')
def test_deploy_checks_the_engine_at_run_time(tmp_path):
    import json
    import os.path as osp
    import torch
    from projects.Demo import DemoNet
    from tools.deploy import main as deploy_main
    root = osp.join(osp.dirname(__file__), '..', '..')
    checkpoint = str(tmp_path / 'float.pth')
    torch.save({'state_dict': DemoNet().state_dict()}, checkpoint)
    assert deploy_main([
        osp.join(root, 'configs', 'demo', 'deploy_demonet.py'),
        osp.join(root, 'configs', 'demo', 'demonet_shapes.py'), checkpoint, '--work-dir',
        str(tmp_path / 'deploy'), '--engine', 'require', '--cfg-options', 'targets=[tensorrt]'
    ]) == 0
    report = json.load(open(tmp_path / 'deploy' / 'deploy_report.json'))
    checks = report['tensorrt_engine']['checks']
    assert set(checks['shapes']['']) == {'min', 'opt', 'max'}
    assert min(s['cosine'] for shape in checks['shapes'][''].values()
               for s in shape.values()) > 0.99
    assert checks['layers'][''] and checks['speedup_over_fp16']['']['rounds'] == 7
    assert checks['metrics'][0]['model'] == 'tensorrt_engine'
