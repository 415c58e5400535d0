"""ONNX graph clean-up passes over onnx-graphsurgeon graphs; each returns how many it changed."""
import os

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from quantization.tensor_quant import quantize_np


def constant_value(tensor):
    """numpy value of an initializer or a Constant node's output, else None."""
    if isinstance(tensor, gs.Constant):
        return tensor.values
    if len(tensor.inputs) == 1 and tensor.inputs[0].op == 'Constant':
        return tensor.inputs[0].attrs['value'].values
    return None


def fold_weight_quantization(graph: gs.Graph) -> int:
    """Replace ``QuantizeLinear(constant weight)`` by an INT8 initializer feeding the
    DequantizeLinear, so the file stores weights in one byte each."""
    folded = 0
    for node in graph.nodes:
        if node.op != 'QuantizeLinear':
            continue
        values = constant_value(node.inputs[0])
        scale = constant_value(node.inputs[1])
        zero_point = constant_value(node.inputs[2]) if len(node.inputs) > 2 else None
        if values is None or scale is None or zero_point is None:
            continue
        axis = node.attrs.get('axis', 1)
        quantized = quantize_np(values, scale, zero_point, axis % max(np.ndim(values), 1))
        int8_weight = gs.Constant(f'{node.name}_int8', quantized)
        for consumer in list(node.outputs[0].outputs):
            consumer.inputs[consumer.inputs.index(node.outputs[0])] = int8_weight
        node.outputs.clear()
        folded += 1
    graph.cleanup().toposort()
    return folded


def fold_weight_transpose(graph: gs.Graph) -> int:
    """``Transpose(DequantizeLinear(INT8 constant))`` (a Linear exported as MatMul) becomes
    ``DequantizeLinear(transposed INT8 constant)`` with the channel axis moved along, so the
    MatMul weight comes straight from a DequantizeLinear on its output-channel axis."""
    folded = 0
    for node in graph.nodes:
        if node.op != 'Transpose' or len(node.inputs[0].inputs) != 1:
            continue
        dequantize = node.inputs[0].inputs[0]
        values = constant_value(
            dequantize.inputs[0]) if dequantize.op == 'DequantizeLinear' else None
        if values is None or len(dequantize.outputs[0].outputs) != 1:
            continue
        values = np.asarray(values)
        perm = list(node.attrs.get('perm', reversed(range(values.ndim))))
        attrs = dict(dequantize.attrs)
        scale = constant_value(dequantize.inputs[1])
        if scale is not None and np.size(scale) > 1:
            attrs['axis'] = perm.index(attrs.get('axis', 1) % values.ndim)
        transposed = gs.Constant(f'{dequantize.name}_transposed_int8',
                                 np.ascontiguousarray(values.transpose(perm)))
        graph.nodes.append(
            gs.Node('DequantizeLinear', f'{dequantize.name}_transposed', attrs,
                    [transposed, *dequantize.inputs[1:]], list(node.outputs)))
        node.outputs.clear()
        folded += 1
    graph.cleanup().toposort()
    return folded


def remove_noop_nodes(graph: gs.Graph) -> int:
    """Remove Identity nodes and Casts to the dtype their input already has."""
    removed = 0
    graph_outputs = {t.name for t in graph.outputs}
    for node in graph.nodes:
        if node.op == 'Identity':
            noop = True
        elif node.op == 'Cast':
            source_dtype = node.inputs[0].dtype
            noop = source_dtype is not None and onnx.helper.np_dtype_to_tensor_dtype(
                np.dtype(source_dtype)) == node.attrs.get('to')
        else:
            continue
        if not noop or node.outputs[0].name in graph_outputs:
            continue
        source, result = node.inputs[0], node.outputs[0]
        for consumer in list(result.outputs):
            consumer.inputs[consumer.inputs.index(result)] = source
        node.outputs.clear()
        removed += 1
    graph.cleanup().toposort()
    return removed


def clean_up_onnx(src_path: str, dst_path: str) -> dict:
    """Fold INT8 weights, drop no-op nodes, infer shapes, check, and write ``dst_path``
    atomically. Returns the counts of each pass."""
    if not os.path.isfile(src_path):
        raise FileNotFoundError(f'ONNX file {src_path} does not exist')
    try:
        model = onnx.load(src_path)
    except Exception as err:
        raise ValueError(f'cannot read ONNX file {src_path}: {str(err).splitlines()[0]}') from err
    graph = gs.import_onnx(model)
    counts = {
        'weights_folded': fold_weight_quantization(graph),
        'weight_transposes_folded': fold_weight_transpose(graph),
        'noops_removed': remove_noop_nodes(graph)
    }
    cleaned = gs.export_onnx(graph)
    del cleaned.opset_import[:]
    cleaned.opset_import.extend(model.opset_import)
    cleaned = onnx.shape_inference.infer_shapes(cleaned)
    onnx.checker.check_model(cleaned)
    tmp_path = f'{dst_path}.tmp.onnx'
    try:
        onnx.save(cleaned, tmp_path)
        os.replace(tmp_path, dst_path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
    return counts
