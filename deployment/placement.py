"""Q/DQ placement targets, as graph passes over the exported Q/DQ ONNX.

- ``tensorrt``: Q/DQ on the inputs and weights of Conv/ConvTranspose/Gemm and on both inputs of
  residual adds, exactly as the quantized torch model exports (pytorch-quantization's placement,
  which TensorRT fuses).
- ``onnxruntime``: the same graph in ONNX Runtime's fast CPU form, uint8 activations and int8
  weights (as its own ``quantize_static`` makes), one scale per tensor:
  1. a tensor quantized by several consumers with different scales gets one Q/DQ pair with the
     largest scale (no new clipping; a coarser grid for the other consumers), so ONNX Runtime can
     fuse it into the producing layer;
  2. a ConvTranspose with kernel == stride (no padding, one group, per-tensor INT8 weights) becomes
     the 1x1 Conv to ``C_out * k * k`` channels plus the depth-to-space it equals, with a Q/DQ
     pair of the consumer's scale between them (depth-to-space only moves values), so it runs as
     QLinearConv; ONNX Runtime has no INT8 ConvTranspose. With a known spatial size the
     depth-to-space is written channels-last (Transpose, Reshape, Transpose, Reshape, Transpose):
     ONNX Runtime runs QLinearConv channels-last and cancels the outer Transposes against its own,
     leaving one copy of ``k * C`` contiguous bytes per pixel row, about half the time of its
     DepthToSpace (a 6-D shuffle between two layout changes); otherwise DepthToSpace(k, CRD);
  3. a Conv whose output feeds SiLU (``x * sigmoid(x)``) or the erf GELU, with no Q/DQ of its
     own, gets a uint8 Q/DQ pair on its output, so ONNX Runtime fuses it into a QLinearConv
     instead of running it in float. It is asymmetric (:func:`pre_activation_range`): its top is
     the input the activation maps to the amax of the quantizer after it (``x = amax /
     gate(x)``, gate the sigmoid or the normal CDF): about ``2 * amax`` for small values, where
     both activations are ``x / 2``, and ``amax`` for large ones, where they are the identity.
     Its bottom minimises the activation's output error on the Conv's outputs over a few
     calibration batches (``write_target_onnx(..., calibration_feeds)``); without data it is
     where the activation, on its way back to 0, is half a step of the pair's grid, a bound on
     the largest error that wastes most of the grid when ``amax`` is small (random full-size
     SceneSeg weights, every layer INT8: centred cosine to float 0.132 with it, 0.992 fitted;
     on the trained small SceneSeg with the default skip list, though, the fit costs 0.8 mIoU,
     so deploy fits only with ``quantization.placement_batches`` > 0).
     (The quantizer's own amax clipped half of the positive range of small-valued layers, such
     as squeeze-excitation inputs: on SceneSeg that took the target's centred cosine to float
     from 0.998 to 0.916. A symmetric pair at ``±top`` clipped large negative inputs, whose
     outputs are about 0, to ``-top * gate(-top)``: every layer INT8, the trained small
     SceneSeg scored 74.75 mIoU in ONNX Runtime against 88.98 in OpenVINO; with the data-free
     bottom, 88.87; fitted on calibration data, 89.56.);
  4. the erf GELU subgraph ``0.5 * x * (1 + erf(x / sqrt(2)))`` becomes ONNX Runtime's fused
     ``com.microsoft.Gelu`` (one pass instead of five; ONNX Runtime's own fusion misses it once it
     gives each consumer of a DequantizeLinear its own copy);
  5. a Conv that still has INT8 weights but a float output (its consumer was left in float, so
     there is no output scale) gets its weights as the float constants they dequantize to:
     ONNX Runtime cannot run it as QLinearConv, and with constant weights it runs its blocked
     float kernel instead of a plain one on dequantized weights (same values, less time);
  6. an activation Q/DQ pair with int8 zero-point 0 becomes uint8 with zero-point 128 and the same
     scale, numerically identical; after a Relu it becomes uint8 with zero-point 0 and scale
     ``amax / 255``: the same clip at amax on a grid twice as fine, and ONNX Runtime folds the
     Relu into the QLinearConv / QLinearAdd before it.
- ``openvino``: the ``tensorrt`` graph with pass 6 alone, except that a signed tensor read only
  by ConvTranspose stays int8 (OpenVINO runs ConvTranspose INT8 only with zero-point 0; with 128
  it runs it in f32). OpenVINO 2026.4's CPU plugin gets a Conv after a Concat of int8
  (zero-point 0) tensors wrong, by about a third of the output's range
  (tests/deployment/test_openvino.py); with uint8 activations it runs the graph as written,
  except that it fuses a residual Add into the Conv before it without rounding that Conv's
  output to the Add's input grid (one step off on about a fifth of the values there).
"""
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import torch
import torch.nn.functional as F

from quantization.fileio import atomic_output
from quantization.tensor_quant import dequantize_np, grid_max, unsigned_scale
from .graph_passes import clean_up_onnx, constant_value
from .ort_runner import tensor_samples

TARGETS = ('tensorrt', 'onnxruntime', 'openvino')


def _activation_quantize_nodes(tensor) -> list:
    """QuantizeLinear nodes whose data input is the (non-constant) ``tensor``."""
    return [
        c for c in tensor.outputs if c.op == 'QuantizeLinear' and c.inputs[0] is tensor
        and constant_value(c.inputs[1]) is not None and constant_value(tensor) is None
    ]


def share_tensor_scales(graph: gs.Graph) -> int:
    """One Q/DQ pair per tensor, with the largest of its consumers' scales; returns how many
    QuantizeLinear nodes were merged away."""
    merged = 0
    for tensor in list(graph.tensors().values()):
        quantize_nodes = _activation_quantize_nodes(tensor)
        if len(quantize_nodes) < 2:
            continue
        keep = max(quantize_nodes, key=lambda q: float(np.max(constant_value(q.inputs[1]))))
        for node in quantize_nodes:
            if node is keep:
                continue
            for dequantize in list(node.outputs[0].outputs):
                dequantize.inputs[0] = keep.outputs[0]
                dequantize.inputs[1], dequantize.inputs[2] = keep.inputs[1], keep.inputs[2]
            node.outputs.clear()
            merged += 1
    graph.cleanup().toposort()
    return merged


def _rewritable_deconvolution(node: gs.Node):
    """(weight DQ node, kernel) of a ConvTranspose the DepthToSpace rewrite fits, else None."""
    kernel, strides = list(node.attrs.get('kernel_shape', [])), list(node.attrs.get('strides', []))
    if (len(kernel) != 2 or kernel != strides or kernel[0] != kernel[1]
            or any(node.attrs.get('pads', [])) or any(node.attrs.get('output_padding', []))
            or node.attrs.get('group', 1) != 1 or any(d != 1
                                                      for d in node.attrs.get('dilations', []))):
        return None
    weight_dq = node.inputs[1].inputs[0] if node.inputs[1].inputs else None
    if weight_dq is None or weight_dq.op != 'DequantizeLinear':
        return None
    weight, scale = constant_value(weight_dq.inputs[0]), constant_value(weight_dq.inputs[1])
    if weight is None or scale is None or np.size(scale) != 1:
        return None
    return weight_dq, kernel[0]


def _channels_last_depth_to_space(name: str, source: gs.Variable, output: gs.Variable, kernel: int,
                                  channels: int, width: int) -> list:
    """Nodes for (N, k*k*C, H, W) with channels ordered (i, j, c) -> (N, C, k*H, k*W):
    to (N, H, W, k, k, C), swap W and i, merge to (N, k*H, k*W, C), back to channels-first."""
    tensors = [source] + [gs.Variable(f'{name}_{i}', source.dtype) for i in range(4)] + [output]
    shapes = [
        gs.Constant(f'{name}_shape_{i}', np.asarray(shape, np.int64))
        for i, shape in enumerate(([0, 0, 0, kernel, kernel, channels],
                                   [0, -1, kernel * width, channels]))
    ]
    steps = [('Transpose', {
        'perm': [0, 2, 3, 1]
    }, []), ('Reshape', {}, [shapes[0]]), ('Transpose', {
        'perm': [0, 1, 3, 2, 4, 5]
    }, []), ('Reshape', {}, [shapes[1]]), ('Transpose', {
        'perm': [0, 3, 1, 2]
    }, [])]
    return [
        gs.Node(op, f'{name}_{i}', attrs, [tensors[i], *extra], [tensors[i + 1]])
        for i, (op, attrs, extra) in enumerate(steps)
    ]


def _append_qdq_pair(graph: gs.Graph, prefix: str, source: gs.Tensor, scale: gs.Tensor,
                     zero_point: gs.Tensor) -> gs.Variable:
    """Append ``prefix_Q`` / ``prefix_DQ`` on ``source``; returns the dequantized tensor."""
    quantized = gs.Variable(f'{prefix}_q', constant_value(zero_point).dtype)
    dequantized = gs.Variable(f'{prefix}_dq', np.float32)
    graph.nodes.append(
        gs.Node('QuantizeLinear', f'{prefix}_Q', {}, [source, scale, zero_point], [quantized]))
    graph.nodes.append(
        gs.Node('DequantizeLinear', f'{prefix}_DQ', {}, [quantized, scale, zero_point],
                [dequantized]))
    return dequantized


def deconvolution_to_depth_to_space(graph: gs.Graph) -> int:
    """Rewrite ConvTranspose (kernel == stride) as 1x1 Conv + depth-to-space; returns the count.

    ``out[n, c, k*h + i, k*w + j] = sum_ci x[n, ci, h, w] * W[ci, c, i, j] + b[c]`` is the 1x1
    Conv with weight ``W'[c*k*k + i*k + j, ci] = W[ci, c, i, j]`` followed by DepthToSpace(k, CRD),
    or with ``W'[(i*k + j)*C + c, ci]`` followed by the channels-last form (module docstring, 2).
    """
    rewritten = 0
    for node in list(graph.nodes):
        rewritable = _rewritable_deconvolution(node) if node.op == 'ConvTranspose' else None
        if rewritable is None:
            continue
        weight_dq, kernel = rewritable
        weight = constant_value(weight_dq.inputs[0])
        in_channels, out_channels = weight.shape[:2]
        height, width = (node.inputs[0].shape or [None] * 4)[2:]
        channels_last = isinstance(height, int) and isinstance(width, int)
        # 1x1 weight rows: (c, i, j) for DepthToSpace CRD, (i, j, c) for the channels-last form
        order = (2, 3, 1, 0) if channels_last else (1, 2, 3, 0)
        conv_weight = gs.Constant(
            f'{node.name}_as_conv_weight',
            np.ascontiguousarray(
                weight.transpose(*order).reshape(out_channels * kernel * kernel, in_channels, 1,
                                                 1)))
        conv_weight_dq = gs.Variable(f'{node.name}_as_conv_weight_dq', np.float32)
        graph.nodes.append(
            gs.Node('DequantizeLinear', f'{node.name}_as_conv_weight_DQ', {},
                    [conv_weight, weight_dq.inputs[1], weight_dq.inputs[2]], [conv_weight_dq]))
        conv_inputs = [node.inputs[0], conv_weight_dq]
        if len(node.inputs) > 2:
            bias = constant_value(node.inputs[2]).astype(np.float32)
            bias = np.tile(bias, kernel *
                           kernel) if channels_last else np.repeat(bias, kernel * kernel)
            conv_inputs.append(gs.Constant(f'{node.name}_as_conv_bias', bias))
        output = node.outputs[0]
        consumers_q = [c for c in output.outputs if c.op == 'QuantizeLinear']
        conv_output = gs.Variable(f'{node.name}_as_conv_out', np.float32)
        graph.nodes.append(
            gs.Node('Conv', f'{node.name}_as_conv', {'kernel_shape': [1, 1]}, conv_inputs,
                    [conv_output]))
        rearranged = conv_output
        if len(consumers_q) == 1 and len(output.outputs) == 1:
            rearranged = _append_qdq_pair(graph, f'{node.name}_as_conv', conv_output,
                                          *consumers_q[0].inputs[1:3])
        if channels_last:
            graph.nodes.extend(
                _channels_last_depth_to_space(f'{node.name}_as_depth_to_space', rearranged, output,
                                              kernel, out_channels, width))
        else:
            graph.nodes.append(
                gs.Node('DepthToSpace', f'{node.name}_as_depth_to_space', {
                    'blocksize': kernel,
                    'mode': 'CRD'
                }, [rearranged], [output]))
        node.outputs.clear()
        rewritten += 1
    graph.cleanup().toposort()
    return rewritten


_SMOOTH_ACTIVATION_OPS = ('Sigmoid', 'Mul', 'Div', 'Erf', 'Add')


def _activation_output_quantizer(conv_output) -> Tuple[Optional[gs.Node], str]:
    """The QuantizeLinear after a SiLU / GELU subgraph fed only by ``conv_output`` (and
    constants), or None: the walk stops at any node that mixes in another tensor; and the gate
    it met (``'Erf'`` for GELU, else ``'Sigmoid'``)."""
    derived, frontier, quantizers, gate = {conv_output.name}, [conv_output], [], 'Sigmoid'
    for _ in range(8):
        next_frontier = []
        for tensor in frontier:
            for node in tensor.outputs:
                if node.op == 'QuantizeLinear' and tensor is not conv_output:
                    quantizers.append(node)
                    continue
                inputs_known = all(
                    t.name in derived or constant_value(t) is not None for t in node.inputs)
                if node.op in _SMOOTH_ACTIVATION_OPS and inputs_known:
                    gate = 'Erf' if node.op == 'Erf' else gate
                    for output in node.outputs:
                        if output.name not in derived:
                            derived.add(output.name)
                            next_frontier.append(output)
        frontier = next_frontier
    return (quantizers[0] if len(quantizers) == 1 else None), gate


def pre_activation_amax(amax: float, gate: str) -> float:
    """The positive ``x`` with ``x * gate(x) == amax``: SiLU's (``gate='Sigmoid'``) or the erf
    GELU's (``'Erf'``) input for an output of ``amax``. The fixed point of
    ``x = amax / gate(x)``, a contraction for ``x > 0`` (the gate lies in [1/2, 1))."""
    x = amax
    for _ in range(100):
        gated = (1.0 / (1.0 + math.exp(-x)) if gate == 'Sigmoid' else 0.5 *
                 (1.0 + math.erf(x / math.sqrt(2.0))))
        x = amax / gated
    return x


def _gate(x: float, gate: str) -> float:
    """The sigmoid (SiLU's gate) or the normal CDF (the erf GELU's) at ``x``."""
    if gate == 'Sigmoid':
        return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _balanced_low(high: float, gate: str, levels: int) -> float:
    """The bottom below which the activation, ``low * gate(low)``, is half a step of the
    ``levels``-step grid over ``[low, high]``: clipping there costs no more than rounding."""
    # bisection on ``x = -low`` past both activations' minimum (GELU's at -0.75, SiLU's at
    # -1.28), where the magnitude ``x * gate(-x)`` falls and half a step grows
    lower, upper = 1.0, 64.0
    for _ in range(100):
        x = 0.5 * (lower + upper)
        excess = x * _gate(-x, gate) - (high + x) / levels / 2
        lower, upper = (x, upper) if excess > 0 else (lower, x)
    return -upper


def uint8_grid(low: float, high: float) -> Tuple[np.ndarray, np.ndarray]:
    """``(scale, zero_point)`` of the uint8 grid over ``[low, high]`` (``low < 0 < high``), as
    the pre-activation pair writes them: float32 scale, uint8 zero-point."""
    scale = np.asarray((high - low) / grid_max(8, unsigned=True), np.float32)
    return scale, np.asarray(round(-low / float(scale)), np.uint8)


def _activation_error(samples: torch.Tensor, low: float, high: float, amax: float,
                      gate: str) -> float:
    """Mean squared error of the activation's output, clipped at ``±amax`` as the next
    quantizer clips it, when its input ``samples`` go through the uint8 grid over
    ``[low, high]`` first."""
    activation = F.silu if gate == 'Sigmoid' else F.gelu
    scale, zero_point = uint8_grid(low, high)
    quantized = torch.fake_quantize_per_tensor_affine(samples, float(scale), int(zero_point), 0,
                                                      grid_max(8, unsigned=True))
    error = activation(quantized).clamp(-amax, amax) - activation(samples).clamp(-amax, amax)
    return float(error.square().mean())


def pre_activation_range(amax: float, gate: str, levels: int = 255,
                         samples: Optional[np.ndarray] = None) -> Tuple[float, float]:
    """``(low, high)`` input range of an asymmetric ``levels``-step grid before SiLU / GELU
    whose outputs the next quantizer clips at ``amax``: ``high`` is :func:`pre_activation_amax`.

    Without ``samples`` ``low`` is where the activation's value is half a step of the grid, so
    that clipping costs no more than rounding for any input (past their minimum both
    activations return towards 0, so the symmetric ``-high`` clipped large negative inputs to
    ``-high * gate(-high)``, far from their near-zero outputs). That bound is loose when
    ``amax`` is small: ``high`` is then small and ``low`` far below it, a coarse grid for the
    values that matter. With ``samples`` (the Conv's outputs on calibration data, (n,)), ``low``
    is the one of 64 bottoms between that bound and 0, and the samples' minimum, that minimises
    the activation's output error on the samples (:func:`_activation_error`)."""
    high = pre_activation_amax(amax, gate)
    bound = _balanced_low(high, gate, levels)
    if samples is None or not np.size(samples):
        return bound, high
    candidates = list(np.linspace(bound, 0.0, 65)[:-1])
    candidates.append(min(max(float(np.min(samples)), bound), candidates[-1]))
    values = torch.from_numpy(np.asarray(samples, np.float32).reshape(-1))
    errors = [_activation_error(values, low, high, amax, gate) for low in candidates]
    return float(candidates[int(np.argmin(errors))]), high


def _pre_activation_convs(graph: gs.Graph) -> List[Tuple[gs.Node, float, str]]:
    """``(conv, amax, gate)`` for each Conv that feeds SiLU / GELU with no Q/DQ of its own and
    one per-tensor quantizer after the activation (``amax`` that quantizer's)."""
    found = []
    for node in graph.nodes:
        if node.op != 'Conv':
            continue
        output = node.outputs[0]
        if any(c.op == 'QuantizeLinear' for c in output.outputs) or not output.outputs:
            continue
        quantizer, gate = _activation_output_quantizer(output)
        scale = None if quantizer is None else constant_value(quantizer.inputs[1])
        if scale is not None and np.size(scale) == 1:
            found.append((node, float(scale) * grid_max(8), gate))
    return found


def pre_activation_tensors(graph: gs.Graph) -> List[str]:
    """The Conv outputs :func:`quantize_conv_outputs_before_activations` quantizes, by name."""
    return [conv.outputs[0].name for conv, _, _ in _pre_activation_convs(graph)]


def quantize_conv_outputs_before_activations(
        graph: gs.Graph, samples: Optional[Dict[str, np.ndarray]] = None) -> int:
    """Q/DQ on the output of each Conv that feeds SiLU / GELU without one (module docstring, 3),
    its range chosen on ``samples`` of that output (by tensor name) where given; returns how
    many pairs were added."""
    added = 0
    for node, amax, gate in _pre_activation_convs(graph):
        output = node.outputs[0]
        low, high = pre_activation_range(amax, gate, samples=(samples or {}).get(output.name))
        scale, zero_point = uint8_grid(low, high)
        consumers = list(output.outputs)
        dequantized = _append_qdq_pair(graph, f'{node.name}_out', output,
                                       gs.Constant(f'{node.name}_out_scale', scale),
                                       gs.Constant(f'{node.name}_out_zero_point', zero_point))
        for consumer in consumers:
            consumer.inputs[consumer.inputs.index(output)] = dequantized
        added += 1
    graph.cleanup().toposort()
    return added


def _sole_consumer(tensor: gs.Tensor, op: str):
    """The only node reading ``tensor`` if it is an ``op``, else None."""
    consumers = tensor.outputs
    return consumers[0] if len(consumers) == 1 and consumers[0].op == op else None


def _scalar_beside(node: gs.Node, tensor: gs.Tensor):
    """The scalar constant ``node`` combines with ``tensor`` (a binary op), else None."""
    others = [t for t in node.inputs if t is not tensor]
    value = constant_value(others[0]) if len(others) == 1 else None
    return float(value) if value is not None and np.size(value) == 1 else None


def _erf_gelu_output(divide: gs.Node):
    """The output of ``0.5 * x * (1 + erf(x / sqrt(2)))`` when ``divide`` is its Div, else None."""
    if divide.op != 'Div' or len(divide.inputs) != 2:
        return None
    x = divide.inputs[0]
    if (constant_value(x) is not None
            or not np.isclose(_scalar_beside(divide, x) or 0.0, np.sqrt(2.0), rtol=1e-4)):
        return None
    erf = _sole_consumer(divide.outputs[0], 'Erf')
    add = erf and _sole_consumer(erf.outputs[0], 'Add')
    if add is None or _scalar_beside(add, erf.outputs[0]) != 1.0:
        return None
    times_x = _sole_consumer(add.outputs[0], 'Mul')
    if times_x is None or [t for t in times_x.inputs if t is not add.outputs[0]] != [x]:
        return None
    half = _sole_consumer(times_x.outputs[0], 'Mul')
    if half is None or _scalar_beside(half, times_x.outputs[0]) != 0.5:
        return None
    return half.outputs[0]


def fuse_erf_gelu(graph: gs.Graph) -> int:
    """Replace each erf GELU subgraph by ``com.microsoft.Gelu`` (module docstring, 4); returns the
    count."""
    fused = 0
    for node in list(graph.nodes):
        output = _erf_gelu_output(node)
        if output is None:
            continue
        output.inputs.clear()
        graph.nodes.append(
            gs.Node(
                'Gelu',
                f'{node.name}_gelu',
                inputs=[node.inputs[0]],
                outputs=[output],
                domain='com.microsoft'))
        fused += 1
    graph.cleanup().toposort()
    return fused


def _has_quantized_output(conv: gs.Node) -> bool:
    """Whether ONNX Runtime can fuse ``conv`` into a QLinearConv: its output feeds a
    QuantizeLinear, directly or through a Relu."""
    for consumer in conv.outputs[0].outputs:
        if consumer.op == 'Relu':
            consumer = _sole_consumer(consumer.outputs[0], 'QuantizeLinear')
        if consumer is not None and consumer.op == 'QuantizeLinear':
            return True
    return False


def dequantize_weights_of_float_convs(graph: gs.Graph) -> int:
    """Constant float weights for each Conv with INT8 weights and a float output (module
    docstring, 5); returns the count."""
    changed = 0
    for node in graph.nodes:
        if node.op != 'Conv' or not node.inputs[1].inputs or _has_quantized_output(node):
            continue
        weight_dq = node.inputs[1].inputs[0]
        if weight_dq.op != 'DequantizeLinear':
            continue
        weight, scale = constant_value(weight_dq.inputs[0]), constant_value(weight_dq.inputs[1])
        if weight is None or scale is None:
            continue
        zero_point = constant_value(weight_dq.inputs[2]) if len(weight_dq.inputs) > 2 else 0
        dequantized = dequantize_np(weight, scale, zero_point, weight_dq.attrs.get('axis', 1))
        node.inputs[1] = gs.Constant(f'{node.name}_dequantized_weight', dequantized)
        changed += 1
    graph.cleanup().toposort()
    return changed


def _reads_only(quantize: gs.Node, ops: Tuple[str, ...]) -> bool:
    """Every layer reading the dequantized output of ``quantize`` is one of ``ops``."""
    readers = [layer for dequantize in quantize.outputs[0].outputs
               for layer in dequantize.outputs[0].outputs]
    return bool(readers) and all(layer.op in ops for layer in readers)


def to_uint8_activations(graph: gs.Graph, signed_kept_for: Tuple[str, ...] = ()) -> int:
    """Turn activation Q/DQ pairs with int8 zero-point 0 into uint8 ones (see the module
    docstring), except signed ones read only by ``signed_kept_for`` ops; returns how many
    QuantizeLinear nodes changed."""
    changed = 0
    for node in list(graph.nodes):
        if node.op != 'QuantizeLinear' or constant_value(node.inputs[0]) is not None:
            continue
        scale, zero_point = constant_value(node.inputs[1]), constant_value(node.inputs[2])
        if scale is None or zero_point is None or zero_point.dtype != np.int8 or np.any(zero_point):
            continue
        after_relu = len(node.inputs[0].inputs) == 1 and node.inputs[0].inputs[0].op == 'Relu'
        if not after_relu and signed_kept_for and _reads_only(node, signed_kept_for):
            continue
        new_scale = unsigned_scale(scale) if after_relu else np.asarray(scale, np.float32)
        new_zero_point = np.full(np.shape(zero_point), 0 if after_relu else 128, np.uint8)
        scale_const = gs.Constant(f'{node.name}_u8_scale', new_scale)
        zero_const = gs.Constant(f'{node.name}_u8_zero_point', new_zero_point)
        node.outputs[0].dtype = np.uint8
        dequantize_nodes = [c for c in node.outputs[0].outputs if c.op == 'DequantizeLinear']
        for quant_node in [node, *dequantize_nodes]:
            quant_node.inputs[1], quant_node.inputs[2] = scale_const, zero_const
        changed += 1
    graph.cleanup().toposort()
    return changed


#: the passes of the ``onnxruntime`` target, in order (the module docstring's 1 to 6)
ONNXRUNTIME_PASSES = (share_tensor_scales, deconvolution_to_depth_to_space,
                      quantize_conv_outputs_before_activations, fuse_erf_gelu,
                      dequantize_weights_of_float_convs, to_uint8_activations)


def apply_placement(graph: gs.Graph, target: str,
                    pre_activation_samples: Optional[Dict[str, np.ndarray]] = None) -> int:
    """Apply a placement target to a Q/DQ graph in place; returns how many nodes the passes
    changed, added or fused. ``pre_activation_samples``: Conv outputs on calibration data by
    tensor name, for the ranges of pass 3 (:func:`pre_activation_range`)."""
    if target not in TARGETS:
        raise ValueError(f'unknown placement target {target!r}; choose one of {TARGETS}')
    if target == 'tensorrt':
        return 0
    if target == 'openvino':
        return to_uint8_activations(graph, signed_kept_for=('ConvTranspose', ))
    return sum(
        graph_pass(graph, pre_activation_samples)
        if graph_pass is quantize_conv_outputs_before_activations else graph_pass(graph)
        for graph_pass in ONNXRUNTIME_PASSES)


def write_target_onnx(raw_path: str, path: str, target: str,
                      calibration_feeds: Optional[List[Dict[str, np.ndarray]]] = None) -> str:
    """The exported Q/DQ ONNX ``raw_path`` cleaned up and placed for ``target``, checked and
    written atomically to ``path`` (opsets kept, plus the domains the placement adds).
    ``calibration_feeds`` (graph inputs by name, a few calibration batches) choose the ranges
    the ``onnxruntime`` target adds before SiLU / GELU; without them the data-free bound."""
    clean_up_onnx(raw_path, path)
    if target == 'tensorrt':
        return path
    cleaned = onnx.load(path)
    graph = gs.import_onnx(cleaned)
    probed = pre_activation_tensors(graph) if target == 'onnxruntime' else []
    samples = (tensor_samples(cleaned, probed, calibration_feeds)
               if probed and calibration_feeds else None)
    apply_placement(graph, target, samples)
    placed = gs.export_onnx(graph)
    opsets = {o.domain: o for o in placed.opset_import}
    opsets.update({o.domain: o for o in cleaned.opset_import})
    del placed.opset_import[:]
    placed.opset_import.extend(opsets.values())
    onnx.checker.check_model(placed)
    with atomic_output(path, '.onnx') as tmp_path:
        onnx.save(placed, tmp_path)
    return path
