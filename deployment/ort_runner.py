"""Run an ONNX file with ONNX Runtime on the CPU (real INT8 kernels for Q/DQ graphs)."""
import os
from typing import Dict, List

import numpy as np
import onnxruntime as ort


class OnnxRuntimeModel:
    """One ONNX Runtime session; ``run`` takes and returns numpy arrays by name.

    Args:
        path (str): ONNX file.
        num_threads (int): Intra-op threads (0 lets ONNX Runtime choose). Defaults to 0.
        fuse (bool): Let ONNX Runtime optimise the graph, which fuses ``DQ -> op -> Q`` into its
            INT8 kernels (QLinearConv, ...). False runs the graph as written, each
            QuantizeLinear / DequantizeLinear a float op of its own: the graph's own arithmetic,
            the same as PyTorch fake-quant up to float summation order. Defaults to True.
    """

    def __init__(self, path: str, num_threads: int = 0, fuse: bool = True):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'ONNX file {path} does not exist')
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        if not fuse:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        except Exception as err:
            raise ValueError(
                f'ONNX Runtime cannot load {path}: {str(err).splitlines()[0]}') from err
        self.input_names: List[str] = [i.name for i in self.session.get_inputs()]
        self.output_names: List[str] = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        missing = sorted(set(self.input_names) - set(inputs))
        if missing:
            raise KeyError(f'missing ONNX inputs {missing}; the model takes {self.input_names}')
        outputs = self.session.run(None, {name: inputs[name] for name in self.input_names})
        return dict(zip(self.output_names, outputs))
