"""A quantized model exports to ONNX with Q/DQ nodes, and ONNX Runtime agrees with PyTorch."""
import warnings
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from deployment.cpu_int8 import int8_kernels_saturate
from projects.Demo import DemoNet, SyntheticShapes
from quantization import CalibrationManager, QuantRecipe
from tests.int8_kernels import SATURATING_COSINE


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope='module')
def quantized_demo():
    torch.manual_seed(0)
    model = DemoNet().eval()
    QuantRecipe().apply(model)
    images = torch.stack([SyntheticShapes(16, size=32)[i]['inputs'] for i in range(16)])
    CalibrationManager(model, progress=False).calibrate([images[:8], images[8:]], 2, 'entropy')
    return model, images


def constant_value(graph, name):
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == 'Constant' and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    raise KeyError(name)


@pytest.mark.parametrize('dynamo', [True, False])
def test_qdq_export_and_onnxruntime_agreement(quantized_demo, tmp_path, dynamo):
    model, images = quantized_demo
    path = str(tmp_path / 'demo_qdq.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            model, (images[:4], ),
            path,
            dynamo=dynamo,
            opset_version=17,
            input_names=['inputs'],
            output_names=['logits'])
    graph = onnx.load(path).graph
    onnx.checker.check_model(onnx.load(path))
    ops = Counter(node.op_type for node in graph.node)
    # 8 weight layers x (input + weight) + QuantAdd (2 inputs) + QuantConcat (2 inputs)
    assert ops['QuantizeLinear'] == 20 and ops['DequantizeLinear'] == 20
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type not in ('Conv', 'ConvTranspose', 'Gemm', 'MatMul'):
            continue
        weight_dq = producers[node.input[1]]
        if weight_dq.op_type == 'Transpose':  # MatMul form of Linear
            weight_dq = producers[weight_dq.input[0]]
        assert weight_dq.op_type == 'DequantizeLinear', node.name
        assert producers[node.input[0]].op_type == 'DequantizeLinear', node.name
        scale = constant_value(graph, weight_dq.input[1])
        zero_point = constant_value(graph, weight_dq.input[2])
        assert zero_point.dtype == np.int8 and not zero_point.any()
        axis = {a.name: a.i for a in weight_dq.attribute}.get('axis', 1)
        if node.op_type == 'ConvTranspose':
            assert scale.ndim == 0  # per-tensor deconvolution weights
        else:
            assert scale.ndim == 1 and axis == 0
    with torch.no_grad():
        torch_logits = model(images[:4]).numpy()
    # As written (Q/DQ as float ops): the same arithmetic as PyTorch's fake quantization.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    as_written = session.run(None, {'inputs': images[:4].numpy()})[0]
    np.testing.assert_allclose(as_written, torch_logits, atol=1e-5 * np.abs(torch_logits).max())
    # With ONNX Runtime's INT8 kernels (QLinearConv): exact on VNNI CPUs, saturating elsewhere.
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    onnx_logits = session.run(None, {'inputs': images[:4].numpy()})[0]
    if int8_kernels_saturate():
        assert cosine(onnx_logits, torch_logits) > SATURATING_COSINE
    else:
        np.testing.assert_allclose(onnx_logits, torch_logits,
                                   atol=2e-3 * np.abs(torch_logits).max())


def test_per_channel_conv_transpose_exports_axis_0(tmp_path):
    from quantization import (QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL,
                              QuantConvTranspose2d)
    deconv = QuantConvTranspose2d(
        4, 6, 2, stride=2, quant_desc_weight=QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL)
    x = torch.randn(1, 4, 5, 5)
    CalibrationManager(deconv, progress=False).calibrate([x], 1, 'max')
    path = str(tmp_path / 'deconv.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(deconv, (x, ), path, dynamo=True, opset_version=17)
    graph = onnx.load(path).graph
    producers = {out: node for node in graph.node for out in node.output}
    deconv_node = next(n for n in graph.node if n.op_type == 'ConvTranspose')
    weight_dq = producers[deconv_node.input[1]]
    assert {a.name: a.i for a in weight_dq.attribute}.get('axis', 1) == 0
    assert constant_value(graph, weight_dq.input[1]).shape == (4, )  # C_in of (C_in, C_out, k, k)
