import importlib.util

import numpy as np
import pytest

from deployment.tensorrt_builder import TensorRTUnavailable, build_engine, trtexec_command

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
    from deployment.tensorrt_builder import run_engine
    from quantization import CalibrationManager, QuantRecipe
    from projects.Demo import DemoNet
    model = DemoNet().eval()
    QuantRecipe().apply(model)
    x = torch.rand(4, 3, 32, 32)
    CalibrationManager(model, progress=False).calibrate([x], 1, 'max')
    onnx_path = export_onnx(model, (x, ), str(tmp_path / 'm.onnx'), ['inputs'], ['logits'])
    engine = build_engine(onnx_path, str(tmp_path / 'm.engine'))
    trt_out = run_engine(engine, {'inputs': x.numpy()})['logits']
    ort_out = OnnxRuntimeModel(onnx_path).run({'inputs': x.numpy()})['logits']
    np.testing.assert_allclose(trt_out, ort_out, atol=0.05 * np.abs(ort_out).max())
