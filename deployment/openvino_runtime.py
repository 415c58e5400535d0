"""OpenVINO on the CPU: the Q/DQ ONNX as IR, run with real INT8 kernels, and the precision each
layer actually ran with.

OpenVINO reads TensorRT-style Q/DQ graphs (symmetric INT8, per-channel weights) and fuses
``DQ -> Conv -> Q`` into INT8 kernels (``brgconv_avx512_I8`` on AVX512-VNNI). Its default
inference precision for the float part is bf16 where the CPU has it; verification uses f32.
``openvino`` is an optional extra: everything here raises :class:`OpenVINOUnavailable` with
one line where it is not installed.
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from quantization.fileio import atomic_output
from .layer_names import weight_source
from .trt_lint import WEIGHT_LAYERS, dequantized_source

#: kernel precisions that are INT8
INT8_PRECISIONS = ('i8', 'u8')
#: the runtime layer types a Conv / ConvTranspose / Gemm / MatMul executes as
COMPUTE_LAYER_TYPES = ('Convolution', 'Deconvolution', 'FullyConnected', 'MatMul')


class OpenVINOUnavailable(ImportError):
    """OpenVINO's Python package is not installed here."""


def import_openvino():
    try:
        import openvino
    except ImportError as err:
        raise OpenVINOUnavailable('OpenVINO is not installed: pip install openvino '
                                  'openvino-telemetry (or the openvino extra)') from err
    return openvino


def save_ir(onnx_path: str, xml_path: str) -> str:
    """Convert ``onnx_path`` to OpenVINO IR ``xml_path`` and its ``.bin`` (weights as they are:
    INT8 stays INT8, float stays f32). Both are written under temporary names; the old ``.xml``
    goes first and the new one comes last, so an interrupted save never leaves an ``.xml`` that
    does not match its ``.bin``."""
    ov = import_openvino()
    model = ov.Core().read_model(onnx_path)
    bin_path = osp.splitext(xml_path)[0] + '.bin'
    with atomic_output(xml_path, '.xml') as tmp_xml:
        tmp_bin = osp.splitext(tmp_xml)[0] + '.bin'
        try:
            ov.save_model(model, tmp_xml, compress_to_fp16=False)
            if osp.lexists(xml_path):
                os.remove(xml_path)
            os.replace(tmp_bin, bin_path)
        finally:
            if osp.lexists(tmp_bin):
                os.remove(tmp_bin)
    return xml_path


@dataclass
class RuntimeLayer:
    """One node of the compiled model as it executes."""
    name: str
    layer_type: str  # Convolution, Deconvolution, FullyConnected, Reorder, ...
    kernel: str  # primitiveType: brgconv_avx512_I8, undef_f32, ...
    runtime_precision: str  # runtimePrecision: u8, i8, f32, bf16 (the input's, not the math's)
    original_names: List[str]  # the ONNX nodes fused into it
    input_names: List[str]  # the executed nodes (or constants) it reads

    @property
    def precision(self) -> str:
        """The precision the kernel computes in, from its name (``brgconv_avx512_I8``: i8).
        ``runtime_precision`` alone misleads: a FullyConnected with INT8 weights and a float
        input runs ``undef_f32`` (weights decompressed) with runtime precision i8."""
        suffix = self.kernel.rsplit('_', 1)[-1].lower() if '_' in self.kernel else ''
        return suffix or self.runtime_precision


class OpenVINOModel:
    """One compiled model on the CPU; ``run`` takes and returns numpy arrays by name.

    Args:
        path (str): IR ``.xml`` or ONNX file.
        inference_precision (str): Precision of the layers that are not INT8: ``'f32'`` (the
            graph's own arithmetic, for verification), ``'bf16'``, or ``''`` for OpenVINO's
            default on this CPU. Defaults to ``'f32'``.
        num_threads (int): Inference threads (0 lets OpenVINO choose). Defaults to 0.
    """

    def __init__(self, path: str, inference_precision: str = 'f32', num_threads: int = 0):
        if not osp.isfile(path):
            raise FileNotFoundError(f'model file {path} does not exist')
        ov = import_openvino()
        config = {}
        if inference_precision:
            config['INFERENCE_PRECISION_HINT'] = inference_precision
        if num_threads:
            config['INFERENCE_NUM_THREADS'] = num_threads
        try:
            self.compiled = ov.Core().compile_model(path, 'CPU', config)
        except RuntimeError as err:
            raise ValueError(
                f'OpenVINO cannot compile {path}: {str(err).strip().splitlines()[0]}') from err
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]

    def run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        missing = sorted(set(self.input_names) - set(inputs))
        if missing:
            raise KeyError(f'missing inputs {missing}; the model takes {self.input_names}')
        results = self.request.infer({name: inputs[name] for name in self.input_names})
        return {name: np.array(results[output])
                for name, output in zip(self.output_names, self.compiled.outputs)}

    def runtime_layers(self) -> List[RuntimeLayer]:
        """Every executed node of the compiled model, in execution order."""
        layers = []
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()

            def field(key):
                return info[key].astype(str) if key in info else ''

            layers.append(
                RuntimeLayer(op.get_friendly_name(), field('layerType'), field('primitiveType'),
                             field('runtimePrecision'),
                             [n for n in field('originalLayersNames').split(',') if n],
                             [i.get_source_output().get_node().get_friendly_name()
                              for i in op.inputs()]))
        return layers


def _executed_as(node: gs.Node, runtime: List[RuntimeLayer]) -> Optional[RuntimeLayer]:
    """The executed node an ONNX weight layer became: the compute layer reading its weight
    constant (OpenVINO keeps constant names; it renames a Deconvolution
    ``ConvolutionBackpropData_<n>``), else the one whose fused ONNX names hold the node's name,
    an output's name (a graph output's producer is named after it) or ``<name>/...`` (the parts
    of a layer it splits: ``<name>/WithoutBiases``, ``<name>/transpose_b``)."""
    compute = [layer for layer in runtime if layer.layer_type in COMPUTE_LAYER_TYPES]
    weight = weight_source(node.inputs[1]) if len(node.inputs) > 1 else None
    by_weight = [layer for layer in compute if weight in layer.input_names]
    if by_weight:
        return by_weight[0]
    exact = {node.name, *(tensor.name for tensor in node.outputs)}
    by_name = [layer for layer in runtime
               if any(n in exact or n.startswith(f'{node.name}/') for n in layer.original_names)]
    return next((layer for layer in by_name if layer in compute), by_name[0] if by_name else None)


#: executed nodes that only move, reshape or (re)quantize data between layers
_PASS_THROUGH_TYPES = ('Reorder', 'Reshape', 'FakeQuantize', 'Transpose', 'Const', 'Input',
                       'Output')


def float_islands(runtime: List[RuntimeLayer], onnx_nodes: Sequence[str] = (),
                  quantize_nodes: Sequence[str] = ()) -> List[str]:
    """Findings for the executed nodes that compute in float between INT8 layers: fed (through
    other nodes that are not INT8 layers, up to 8 deep) by an INT8 Convolution / Deconvolution
    / FullyConnected and feeding one the same way. Each converts INT8 data to float and back
    (a reformat on every boundary); named by the first of ``onnx_nodes`` fused into it, else as
    the OpenVINO op after its INT8 producer (one OpenVINO adds, such as the dequantizing
    Multiply of an INT8 Conv read by float and INT8 layers alike, has a name that changes from
    compile to compile). A node made only of ``quantize_nodes`` (the ONNX graph's Q/DQ;
    OpenVINO runs an unfused one as a float ``Subgraph``) is the boundary itself."""
    onnx_nodes, quantize_nodes = set(onnx_nodes), set(quantize_nodes)
    by_name = {layer.name: layer for layer in runtime}
    readers: Dict[str, List[RuntimeLayer]] = {}
    for layer in runtime:
        for name in layer.input_names:
            readers.setdefault(name, []).append(layer)

    def int8_compute(layer):
        return layer.layer_type in COMPUTE_LAYER_TYPES and layer.precision in INT8_PRECISIONS

    def reaches(start, step, hops: int = 8) -> Optional[RuntimeLayer]:
        frontier = step(start)
        for _ in range(hops):
            found = next((layer for layer in frontier if int8_compute(layer)), None)
            if found or not frontier:
                return found
            frontier = [n for layer in frontier if layer.layer_type != 'Output'
                        for n in step(layer)]
        return None

    def producers(layer):
        return [by_name[n] for n in layer.input_names if n in by_name]

    def consumers(layer):
        return readers.get(layer.name, [])

    findings = []
    for layer in runtime:
        if (layer.layer_type in _PASS_THROUGH_TYPES or layer.layer_type in COMPUTE_LAYER_TYPES
                or layer.precision in INT8_PRECISIONS
                or set(layer.original_names or [layer.name]) <= quantize_nodes):
            continue
        before, after = reaches(layer, producers), reaches(layer, consumers)
        if before and after:
            name = next((n for n in layer.original_names if n in onnx_nodes),
                        f'OpenVINO {layer.layer_type} after {before.name}')
            findings.append(f'{name}: [float-island] {layer.layer_type} runs in '
                            f'{layer.precision} between INT8 layers {before.name} and '
                            f'{after.name}')
    return findings


def precision_report(onnx_path: str, runtime: List[RuntimeLayer],
                     layer_names: Dict[str, str]) -> dict:
    """The kernel and precision every weight layer of ``onnx_path`` ran with, by our layer name.

    Returns ``{'layers': [row, ...], 'lint': [finding, ...], 'float_islands': [finding, ...]}``
    (:func:`float_islands`). A row holds ``layer`` (our name,
    else the ONNX node's), ``onnx_node``, ``op``, ``quantized`` (INT8 weight in the graph: meant
    to run INT8), ``runtime_layer``, ``layer_type``, ``kernel``, ``precision`` (the kernel's),
    ``runtime_precision`` and ``int8`` (ran INT8). A quantized layer that does not run INT8, or
    is in no executed node, is a finding.
    """
    rows, lint = [], []
    graph = gs.import_onnx(onnx.load(onnx_path))
    for node in graph.nodes:
        if node.op not in WEIGHT_LAYERS:
            continue
        layer = layer_names.get(node.name, node.name)
        quantized = len(node.inputs) > 1 and dequantized_source(node.inputs[1]) is not None
        ran = _executed_as(node, runtime)
        int8 = ran is not None and ran.precision in INT8_PRECISIONS
        rows.append({
            'layer': layer,
            'onnx_node': node.name,
            'op': node.op,
            'quantized': quantized,
            'runtime_layer': ran.name if ran else '',
            'layer_type': ran.layer_type if ran else '',
            'kernel': ran.kernel if ran else '',
            'precision': ran.precision if ran else '',
            'runtime_precision': ran.runtime_precision if ran else '',
            'int8': int8
        })
        if quantized and ran is None:
            lint.append(f'{layer}: [not-executed] quantized {node.op} {node.name} is in no '
                        'executed node of the compiled model')
        elif quantized and not int8:
            lint.append(f'{layer}: [float-layer] quantized {node.op} runs in {ran.precision} '
                        f'({ran.layer_type}, kernel {ran.kernel}), not INT8')
    quantize_nodes = [n.name for n in graph.nodes
                      if n.op in ('QuantizeLinear', 'DequantizeLinear')]
    return {'layers': rows, 'lint': lint,
            'float_islands': float_islands(runtime, [n.name for n in graph.nodes],
                                           quantize_nodes)}
