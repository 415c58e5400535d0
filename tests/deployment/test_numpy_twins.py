"""The numpy twins of the quantization arithmetic against ONNX Runtime's QuantizeLinear /
DequantizeLinear (a real runtime) and against PyTorch fake quantization."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from quantization.tensor_quant import (dequantize_np, fake_quant, quantize_np, scale_from_amax,
                                       unsigned_scale)


def run_ort_qdq(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int):
    """ONNX Runtime's (q, dq) of ``x``."""
    q_type = TensorProto.INT8 if zero_point.dtype == np.int8 else TensorProto.UINT8
    nodes = [
        helper.make_node('QuantizeLinear', ['x', 's', 'z'], ['q'], axis=axis),
        helper.make_node('DequantizeLinear', ['q', 's', 'z'], ['dq'], axis=axis)
    ]
    graph = helper.make_graph(
        nodes, 'qdq', [helper.make_tensor_value_info('x', TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info('q', q_type, x.shape),
         helper.make_tensor_value_info('dq', TensorProto.FLOAT, x.shape)],
        [onnx.numpy_helper.from_array(scale, 's'), onnx.numpy_helper.from_array(zero_point, 'z')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(None, {'x': x})


@pytest.mark.parametrize('per_channel', [False, True])
@pytest.mark.parametrize('dtype', [np.int8, np.uint8])
def test_numpy_quantize_dequantize_equal_onnx_runtime(per_channel, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 3, 5, 5)) * 3).astype(np.float32)
    x[0, 0, 0, :3] = [0.5, 1.5, -2.5]  # exact halves: round half to even
    scale = (np.array([0.02, 0.05, 0.1], np.float32) if per_channel else np.float32(0.05))
    zero_point = np.full(np.shape(scale), 128 if dtype == np.uint8 else 0, dtype)
    if per_channel:
        x[0, :, 0, :3] = scale[:, None] * np.array([0.5, 1.5, -2.5], np.float32)
    q_ort, dq_ort = run_ort_qdq(x, scale, zero_point, axis=1)
    q = quantize_np(x, scale, zero_point, axis=1)
    assert q.dtype == dtype and np.array_equal(q, q_ort)
    assert np.array_equal(dequantize_np(q, scale, zero_point, axis=1), dq_ort)


def test_numpy_twins_equal_fake_quant_inside_amax_and_unsigned_scale():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6)
    amax = x.abs().amax(dim=(0, 2, 3))
    scale = scale_from_amax(amax, 127)
    fq = fake_quant(x, scale, torch.zeros(4, dtype=torch.int32), 1, -127, 127)
    q = quantize_np(x.numpy(), scale.numpy(), np.zeros(4, np.int8), axis=1)
    assert np.array_equal(dequantize_np(q, scale.numpy(), 0, axis=1), fq.numpy())
    # amax 2.54: the signed step 0.02 becomes 2.54 / 255 on the unsigned grid
    assert unsigned_scale(np.float32(0.02)) == pytest.approx(2.54 / 255, rel=1e-6)
