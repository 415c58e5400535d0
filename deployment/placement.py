"""Q/DQ placement targets, as graph passes over the exported Q/DQ ONNX.

- ``tensorrt``: Q/DQ on the inputs and weights of Conv/ConvTranspose/Gemm and on both inputs of
  residual adds, exactly as the quantized torch model exports (pytorch-quantization's placement,
  which TensorRT fuses).
- ``onnxruntime``: additionally a Q/DQ pair right after each Conv/ConvTranspose/Gemm whose output
  (directly or through a Relu) only feeds QuantizeLinear nodes of one scale. ONNX Runtime then
  finds its DQ -> Conv -> Q units and runs QLinearConv. The pair reuses the consumers' scale, so
  the result is unchanged: negative values it clips are zeroed by the Relu anyway.
"""
import numpy as np
import onnx_graphsurgeon as gs

from .graph_passes import _constant_value

TARGETS = ('tensorrt', 'onnxruntime')
LAYERS = ('Conv', 'ConvTranspose', 'Gemm')


def _shared_consumer_quantize(tensor):
    """The QuantizeLinear nodes fed by ``tensor`` (through one Relu) if all share one scale."""
    consumers = list(tensor.outputs)
    through_relu = len(consumers) == 1 and consumers[0].op == 'Relu'
    if through_relu:
        consumers = list(consumers[0].outputs[0].outputs)
    if not consumers or any(c.op != 'QuantizeLinear' for c in consumers):
        return None
    scales = [_constant_value(c.inputs[1]) for c in consumers]
    zero_points = [_constant_value(c.inputs[2]) for c in consumers]
    if any(s is None for s in scales) or any(not np.array_equal(s, scales[0]) for s in scales):
        return None
    if any(z is None or np.any(z != 0) for z in zero_points):
        return None
    return consumers[0]


def quantize_layer_outputs(graph: gs.Graph) -> int:
    """Insert Q/DQ after each Conv/ConvTranspose/Gemm as described above; returns the count."""
    inserted = 0
    for node in list(graph.nodes):
        if node.op not in LAYERS:
            continue
        consumer_q = _shared_consumer_quantize(node.outputs[0])
        if consumer_q is None:
            continue
        raw = node.outputs[0]
        quantized = gs.Variable(f'{node.name}_out_q', dtype=np.int8)
        dequantized = gs.Variable(f'{node.name}_out_dq', dtype=np.float32)
        consumers = list(raw.outputs)
        scale, zero_point = consumer_q.inputs[1], consumer_q.inputs[2]
        graph.nodes.append(
            gs.Node('QuantizeLinear', f'{node.name}_out_Q', {}, [raw, scale, zero_point],
                    [quantized]))
        graph.nodes.append(
            gs.Node('DequantizeLinear', f'{node.name}_out_DQ', {}, [quantized, scale, zero_point],
                    [dequantized]))
        for consumer in consumers:
            consumer.inputs[consumer.inputs.index(raw)] = dequantized
        inserted += 1
    graph.cleanup().toposort()
    return inserted


def apply_placement(graph: gs.Graph, target: str) -> int:
    """Apply a placement target to a Q/DQ graph in place; returns the Q/DQ pairs added."""
    if target not in TARGETS:
        raise ValueError(f'unknown placement target {target!r}; choose one of {TARGETS}')
    return quantize_layer_outputs(graph) if target == 'onnxruntime' else 0
