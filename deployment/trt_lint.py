"""TensorRT lint of a Q/DQ ONNX graph: placements TensorRT will not fuse into INT8, or rejects.

Rules (TensorRT explicit quantization, as pytorch-quantization places Q/DQ):
- ``unquantized-input`` / ``unquantized-weight``: a Conv, ConvTranspose, Gemm or MatMul whose data
  or weight input does not come from a DequantizeLinear runs in float.
- ``nonzero-zero-point``: TensorRT takes symmetric quantization only.
- ``weight-axis``: per-channel weight scales must lie on the output-channel axis (Conv axis 0,
  Gemm axis 0 with transB=1 else 1, MatMul the last axis); per-channel ConvTranspose weights made
  TensorRT builds of AWML's CenterPoint fail, so they are reported too.
- ``add-scale-mismatch``: a residual Add whose two quantized inputs carry different scales cannot
  be fused into the preceding convolution.
- ``float-op-in-qdq``: a DequantizeLinear -> op -> QuantizeLinear sandwich around an op TensorRT
  runs in float (GELU, Sigmoid, Softmax, ...) only adds conversions.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .graph_passes import constant_value

WEIGHT_LAYERS = ('Conv', 'ConvTranspose', 'Gemm', 'MatMul')
#: ops TensorRT executes in INT8 or passes INT8 through (Q/DQ around them is useful).
INT8_OPS = set(WEIGHT_LAYERS) | {
    'Add', 'Relu', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Concat', 'Reshape', 'Transpose',
    'Slice', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity', 'Resize', 'Pad', 'Split', 'Gather',
    'ReduceMax', 'Clip', 'LeakyRelu', 'Mul', 'QuantizeLinear', 'DequantizeLinear'
}


@dataclass
class LintIssue:
    node: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f'{self.node}: [{self.rule}] {self.message}'


def _producer(tensor) -> Optional[gs.Node]:
    return tensor.inputs[0] if len(tensor.inputs) else None


def dequantized_source(tensor) -> Optional[gs.Node]:
    """The DequantizeLinear producing ``tensor``, looking through a Transpose (MatMul weights)."""
    node = _producer(tensor)
    if node is not None and node.op == 'Transpose':
        node = _producer(node.inputs[0])
    return node if node is not None and node.op == 'DequantizeLinear' else None


def _weight_rank(weight_dq: gs.Node) -> int:
    """Rank of the weight a DequantizeLinear yields: its INT8 constant, or the float constant
    its QuantizeLinear reads (graphs before clean-up), else the tensor's shape, else 4."""
    weight = constant_value(weight_dq.inputs[0])
    quantize = _producer(weight_dq.inputs[0])
    if weight is None and quantize is not None and quantize.op == 'QuantizeLinear':
        weight = constant_value(quantize.inputs[0])
    if weight is not None:
        return np.ndim(weight)
    shape = weight_dq.inputs[0].shape
    return len(shape) if shape is not None else 4


def _expected_weight_axis(layer: gs.Node, weight_rank: int) -> int:
    if layer.op == 'Gemm':
        return 0 if layer.attrs.get('transB', 0) else 1
    if layer.op == 'MatMul':
        return weight_rank - 1
    return 0


def lint_for_tensorrt(model) -> List[LintIssue]:
    """Lint an ONNX model (path, ModelProto or gs.Graph); returns the issues by node name."""
    if isinstance(model, str):
        model = onnx.load(model)
    graph = model if isinstance(model, gs.Graph) else gs.import_onnx(model)
    issues: List[LintIssue] = []
    for node in graph.nodes:
        if node.op in ('QuantizeLinear', 'DequantizeLinear') and len(node.inputs) > 2:
            zero_point = constant_value(node.inputs[2])
            if zero_point is not None and np.any(zero_point != 0):
                issues.append(
                    LintIssue(node.name, 'nonzero-zero-point',
                              'TensorRT needs symmetric quantization (zero-point 0)'))
        if node.op in WEIGHT_LAYERS:
            issues += _lint_weight_layer(node)
        elif node.op == 'Add':
            issues += _lint_add(node)
        elif node.op not in INT8_OPS:
            issues += _lint_float_op(node)
    return issues


def _lint_weight_layer(node: gs.Node) -> List[LintIssue]:
    issues = []
    if dequantized_source(node.inputs[0]) is None:
        issues.append(
            LintIssue(node.name, 'unquantized-input',
                      f'{node.op} input has no Q/DQ: the layer runs in float'))
    weight_dq = dequantized_source(node.inputs[1]) if len(node.inputs) > 1 else None
    if weight_dq is None:
        issues.append(
            LintIssue(node.name, 'unquantized-weight',
                      f'{node.op} weight has no DequantizeLinear: the layer runs in '
                      'float'))
        return issues
    scale = constant_value(weight_dq.inputs[1])
    if scale is None or np.ndim(scale) == 0 or np.size(scale) == 1:
        return issues
    rank = _weight_rank(weight_dq)
    axis = weight_dq.attrs.get('axis', 1) % rank
    between = _producer(node.inputs[1])
    if between is not None and between.op == 'Transpose':  # the axis after the transpose
        axis = list(between.attrs.get('perm', reversed(range(rank)))).index(axis)
    if node.op == 'ConvTranspose':
        issues.append(
            LintIssue(
                node.name, 'weight-axis',
                f'per-channel ConvTranspose weights (axis {axis}) made TensorRT '
                'builds fail ("vol == 1 failed"); quantize them per tensor'))
    elif axis != _expected_weight_axis(node, rank):
        issues.append(
            LintIssue(
                node.name, 'weight-axis',
                f'per-channel weight scales on axis {axis}; TensorRT needs the '
                f'output-channel axis {_expected_weight_axis(node, rank)}'))
    return issues


def _lint_add(node: gs.Node) -> List[LintIssue]:
    sources = [dequantized_source(t) for t in node.inputs[:2]]
    if any(source is None for source in sources):
        return []
    scales = [constant_value(source.inputs[1]) for source in sources]
    if any(scale is None for scale in scales) or np.allclose(scales[0], scales[1]):
        return []
    return [
        LintIssue(
            node.name, 'add-scale-mismatch',
            f'residual Add inputs carry different scales ({float(np.max(scales[0])):.4g}'
            f' vs {float(np.max(scales[1])):.4g}); share one quantizer (QuantAdd)')
    ]


def _lint_float_op(node: gs.Node) -> List[LintIssue]:
    quantized_in = any(dequantized_source(t) is not None for t in node.inputs)
    quantized_out = any(consumer.op == 'QuantizeLinear' for t in node.outputs
                        for consumer in t.outputs)
    if quantized_in and quantized_out:
        return [
            LintIssue(node.name, 'float-op-in-qdq',
                      f'Q/DQ around {node.op}, which TensorRT runs in float: remove them')
        ]
    return []
