import os

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest
import torch

from deployment import export_onnx
from deployment.graph_passes import clean_up_onnx
from deployment.trt_lint import lint_for_tensorrt
from projects.Demo import DemoNet
from quantization import CalibrationManager, QuantRecipe


def qdq(graph_nodes, tensor, scale, zero_point=0, axis=None, name='x'):
    """Append Q and DQ of ``tensor`` to ``graph_nodes``; returns the dequantized variable."""
    scale = np.asarray(scale, np.float32)
    zp = gs.Constant(f'{name}_zp', np.full(scale.shape, zero_point, np.int8))
    scale_c = gs.Constant(f'{name}_scale', scale)
    attrs = {} if axis is None else {'axis': axis}
    quantized = gs.Variable(f'{name}_q', dtype=np.int8)
    dequantized = gs.Variable(f'{name}_dq', dtype=np.float32)
    graph_nodes.append(
        gs.Node('QuantizeLinear', f'{name}_Q', attrs, [tensor, scale_c, zp], [quantized]))
    graph_nodes.append(
        gs.Node('DequantizeLinear', f'{name}_DQ', attrs, [quantized, scale_c, zp], [dequantized]))
    return dequantized


def conv_graph(op='Conv', weight_axis=0, input_qdq=True, zero_point=0):
    x = gs.Variable('input', np.float32, (1, 4, 8, 8))
    nodes = []
    data = qdq(nodes, x, 0.02, zero_point, name='in') if input_qdq else x
    shape = (6, 4, 3, 3) if op == 'Conv' else (4, 6, 3, 3)
    weight = gs.Constant('w', np.random.default_rng(0).normal(size=shape).astype(np.float32))
    channels = shape[weight_axis]
    w_dq = qdq(nodes, weight, np.full(channels, 0.03), axis=weight_axis, name='w')
    y = gs.Variable('output', np.float32)
    nodes.append(gs.Node(op, 'layer', {}, [data, w_dq], [y]))
    return gs.Graph(nodes=nodes, inputs=[x], outputs=[y], opset=17)


def rules(graph):
    return {(issue.node, issue.rule) for issue in lint_for_tensorrt(graph)}


def test_clean_conv_has_no_issue():
    assert rules(conv_graph()) == set()


@pytest.mark.parametrize('graph,expected', [
    (conv_graph(input_qdq=False), ('layer', 'unquantized-input')),
    (conv_graph(zero_point=3), ('in_Q', 'nonzero-zero-point')),
    (conv_graph(weight_axis=1), ('layer', 'weight-axis')),
    (conv_graph(op='ConvTranspose', weight_axis=0), ('layer', 'weight-axis')),
])
def test_planted_layer_defects_are_named(graph, expected):
    assert expected in rules(graph)


def test_add_with_different_scales_and_float_op_sandwich():
    a, b = gs.Variable('a', np.float32, (1, 4)), gs.Variable('b', np.float32, (1, 4))
    nodes = []
    a_dq, b_dq = qdq(nodes, a, 0.1, name='a'), qdq(nodes, b, 0.2, name='b')
    summed, sig = gs.Variable('sum', np.float32), gs.Variable('sig', np.float32)
    nodes.append(gs.Node('Add', 'residual_add', {}, [a_dq, b_dq], [summed]))
    nodes.append(gs.Node('Sigmoid', 'gate', {}, [qdq(nodes, summed, 0.1, name='s')], [sig]))
    out = qdq(nodes, sig, 0.01, name='o')
    graph = gs.Graph(nodes=nodes, inputs=[a, b], outputs=[out], opset=17)
    assert rules(graph) == {('residual_add', 'add-scale-mismatch'), ('gate', 'float-op-in-qdq')}


@pytest.fixture(scope='module')
def exported_demo(tmp_path_factory):
    torch.manual_seed(0)
    model = DemoNet().eval()
    QuantRecipe().apply(model)
    CalibrationManager(model, progress=False).calibrate([torch.rand(8, 3, 32, 32)], 1, 'max')
    path = str(tmp_path_factory.mktemp('onnx') / 'demo.onnx')
    export_onnx(model, (torch.rand(2, 3, 32, 32), ), path, ['inputs'], ['logits'], dynamo=False)
    return path


def test_clean_up_folds_int8_weights_exactly_and_lint_passes(exported_demo, tmp_path):
    cleaned = str(tmp_path / 'clean.onnx')
    counts = clean_up_onnx(exported_demo, cleaned)
    assert counts['weights_folded'] == 8
    graph = onnx.load(cleaned).graph
    int8_initializers = [
        i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2
    ]
    assert len(int8_initializers) == 8
    x = np.random.default_rng(0).random((2, 3, 32, 32), np.float32)
    before = ort.InferenceSession(exported_demo).run(None, {'inputs': x})[0]
    after = ort.InferenceSession(cleaned).run(None, {'inputs': x})[0]
    np.testing.assert_array_equal(before, after)
    assert lint_for_tensorrt(cleaned) == []


def test_matmul_weight_transpose_is_folded_onto_the_output_channel_axis(tmp_path):
    """A Linear on (N, P, C) points exports as DQ(W, axis 0) -> Transpose -> MatMul: per output
    channel, which the lint must accept; the clean-up stores W^T with axis 1, same outputs."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16)).eval()
    QuantRecipe().apply(model)
    points = torch.randn(64, 8, 10)
    CalibrationManager(model, progress=False).calibrate([points], 1, 'max')
    raw, cleaned = str(tmp_path / 'raw.onnx'), str(tmp_path / 'clean.onnx')
    export_onnx(model, (points, ), raw, ['points'], ['features'])
    assert 'Transpose' in {n.op_type for n in onnx.load(raw).graph.node}
    assert [i.rule for i in lint_for_tensorrt(raw) if i.rule == 'weight-axis'] == []
    assert clean_up_onnx(raw, cleaned)['weight_transposes_folded'] == 1
    graph = gs.import_onnx(onnx.load(cleaned))
    matmul = next(n for n in graph.nodes if n.op == 'MatMul')
    weight_dq = matmul.inputs[1].inputs[0]
    assert weight_dq.op == 'DequantizeLinear' and weight_dq.attrs['axis'] == 1
    assert weight_dq.inputs[0].values.shape == (10, 16)
    assert 'Transpose' not in {n.op for n in graph.nodes} and lint_for_tensorrt(cleaned) == []
    x = points.numpy()
    before = ort.InferenceSession(raw).run(None, {'points': x})[0]
    after = ort.InferenceSession(cleaned).run(None, {'points': x})[0]
    np.testing.assert_array_equal(before, after)
    with torch.no_grad():
        np.testing.assert_allclose(after, model(points).numpy(), atol=1e-5)


def test_clean_up_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.onnx does not exist'):
        clean_up_onnx(str(tmp_path / 'missing.onnx'), str(tmp_path / 'out.onnx'))
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'\x00garbage')
    with pytest.raises(ValueError, match='cannot read ONNX file .*corrupt.onnx'):
        clean_up_onnx(str(corrupt), str(tmp_path / 'out.onnx'))
    assert not os.path.exists(tmp_path / 'out.onnx')
