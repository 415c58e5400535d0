"""Our layer names (module paths in the whole model) for the weight layers of an exported graph.

An exported node's name depends on the exporter (``/model/stem/stem.0/Conv`` from TorchScript,
``node_conv2d_3`` from dynamo), but its weight is always the constant named after the traced
module's parameter (``model.stem.0.weight``), seen through the weight's Q/DQ and, for MatMul, a
Transpose. That parameter is one of the model's own, so its name in the model gives the layer.
"""
from typing import Dict

import onnx
import onnx_graphsurgeon as gs
from torch import nn

from .trt_lint import WEIGHT_LAYERS

#: ops between a weight constant and the layer reading it
_WEIGHT_PATH_OPS = ('QuantizeLinear', 'DequantizeLinear', 'Transpose')


def parameter_names(traced: nn.Module, model: nn.Module) -> Dict[str, str]:
    """``{parameter name in the traced module: name in the model}`` for shared parameters."""
    in_model = {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}
    return {
        name: in_model[id(p)]
        for name, p in traced.named_parameters(remove_duplicate=False) if id(p) in in_model
    }


def weight_source(tensor) -> str:
    """The name of the tensor a weight input is read from, through its Q/DQ and Transpose."""
    while len(tensor.inputs) and tensor.inputs[0].op in _WEIGHT_PATH_OPS:
        tensor = tensor.inputs[0].inputs[0]
    return tensor.name


def weight_layer_names(onnx_path: str, names: Dict[str, str]) -> Dict[str, str]:
    """``{ONNX node name: layer name}`` for every Conv / ConvTranspose / Gemm / MatMul of the
    graph whose weight is a parameter in ``names`` (:func:`parameter_names`); the layer name is
    the parameter's name in the model without ``.weight``."""
    graph = gs.import_onnx(onnx.load(onnx_path))
    layers = {}
    for node in graph.nodes:
        if node.op not in WEIGHT_LAYERS or len(node.inputs) < 2:
            continue
        parameter = names.get(weight_source(node.inputs[1]))
        if parameter is not None:
            layers[node.name] = parameter.rsplit('.', 1)[0]
    return layers
