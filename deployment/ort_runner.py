"""Run an ONNX file with ONNX Runtime on the CPU (real INT8 kernels for Q/DQ graphs)."""
import os
from typing import Dict, List

import numpy as np
import onnx
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


def tensor_samples(model: onnx.ModelProto, names: List[str], feeds: List[Dict[str, np.ndarray]],
                   per_tensor: int = 1 << 18, seed: int = 0) -> Dict[str, np.ndarray]:
    """Values of the intermediate tensors ``names`` of ``model`` run as written (each Q/DQ a
    float op) on every feed: ``{name: (n,) float32}``, at most ``per_tensor`` values each, drawn
    uniformly without replacement from each feed's share (the same draw for the same seed)."""
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    del probed.graph.output[:]
    probed.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probed.SerializeToString(), options,
                                   providers=['CPUExecutionProvider'])
    inputs = {i.name: i.shape[0] for i in session.get_inputs()}
    feeds = [part for feed in feeds for part in _split_batch(feed, inputs)]
    rng = np.random.default_rng(seed)
    share = max(1, per_tensor // max(1, len(feeds)))
    drawn = {name: [] for name in names}
    for feed in feeds:
        for name, values in zip(names, session.run(names, {n: feed[n] for n in inputs})):
            flat = values.reshape(-1)
            chosen = rng.choice(flat.size, share, replace=False) if flat.size > share else None
            drawn[name].append(flat if chosen is None else flat[chosen])
    return {name: np.concatenate(parts).astype(np.float32) for name, parts in drawn.items()}


def _split_batch(feed: Dict[str, np.ndarray], batch_dims: Dict[str, object]) -> list:
    """``feed`` cut into batches of the fixed first dimension the model takes (exported for one
    image, fed a calibration batch of several); as it is otherwise."""
    steps, sizes = set(batch_dims.values()), {feed[n].shape[0] for n in batch_dims}
    if len(steps) == 1 and len(sizes) == 1:
        step, size = steps.pop(), sizes.pop()
        if isinstance(step, int) and 0 < step < size and size % step == 0:
            return [{n: feed[n][start:start + step] for n in batch_dims}
                    for start in range(0, size, step)]
    return [{n: feed[n] for n in batch_dims}]
