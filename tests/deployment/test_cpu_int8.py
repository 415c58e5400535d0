"""The INT8 kernels of ONNX Runtime on this CPU: exact with VNNI, saturating int16 pairs
without it (deployment.cpu_int8), shown on a convolution whose products overflow int16."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from deployment.cpu_int8 import int8_kernels_saturate

CHANNELS = 64


def overflowing_conv(path: str):
    """x (uint8 255 everywhere) * w (int8 127) summed over 64 channels: every pair of products
    is 64770, over int16's 32767; the output grid fits the exact sum."""
    exact = CHANNELS * 255 * 127
    initializers = [
        numpy_helper.from_array(np.array(1.0, np.float32), 'x_scale'),
        numpy_helper.from_array(np.array(0, np.uint8), 'x_zero'),
        numpy_helper.from_array(np.full((4, CHANNELS, 1, 1), 127, np.int8), 'w'),
        numpy_helper.from_array(np.ones(4, np.float32), 'w_scale'),
        numpy_helper.from_array(np.zeros(4, np.int8), 'w_zero'),
        numpy_helper.from_array(np.array(exact / 255, np.float32), 'y_scale'),
        numpy_helper.from_array(np.array(0, np.uint8), 'y_zero'),
    ]
    nodes = [
        helper.make_node('QuantizeLinear', ['x', 'x_scale', 'x_zero'], ['xq']),
        helper.make_node('DequantizeLinear', ['xq', 'x_scale', 'x_zero'], ['xd']),
        helper.make_node('DequantizeLinear', ['w', 'w_scale', 'w_zero'], ['wd'], axis=0),
        helper.make_node('Conv', ['xd', 'wd'], ['y']),
        helper.make_node('QuantizeLinear', ['y', 'y_scale', 'y_zero'], ['yq']),
        helper.make_node('DequantizeLinear', ['yq', 'y_scale', 'y_zero'], ['out']),
    ]
    inputs = [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, CHANNELS, 2, 2])]
    outputs = [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, 4, 2, 2])]
    graph = helper.make_graph(nodes, 'overflow', inputs, outputs, initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    return exact


def test_onnxruntime_int8_conv_is_exact_only_where_the_cpu_has_vnni(tmp_path):
    path = str(tmp_path / 'overflow.onnx')
    exact = overflowing_conv(path)
    x = np.full((1, CHANNELS, 2, 2), 255, np.float32)
    results = {}
    for name, level in (('as written', ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                        ('int8 kernels', ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        results[name] = float(session.run(None, {'x': x})[0].max())
    assert results['as written'] == exact  # Q/DQ run as float ops: the graph's arithmetic
    if int8_kernels_saturate():
        # every pair clipped to int16: 32 pairs of at most 32767, on the output grid
        assert results['int8 kernels'] <= CHANNELS // 2 * 32767 + exact / 255
    else:
        assert results['int8 kernels'] == exact
