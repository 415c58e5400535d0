"""TensorRT INT8 engines from Q/DQ ONNX (explicit quantization), with the real TensorRT API:
build, run, and each layer's precision from the engine inspector.

TensorRT is an optional extra: everything here raises :class:`TensorRTUnavailable` with one line
where it is not installed. :func:`trtexec_command` and :func:`polygraphy_command` need no
TensorRT and give the equivalent command lines for a GPU machine.
"""
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from quantization.fileio import write_bytes_atomic

#: profile: {input name: (min shape, opt shape, max shape)}
Profile = Dict[str, Sequence[Sequence[int]]]


class TensorRTUnavailable(ImportError):
    """TensorRT's Python package is not installed here."""


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as err:
        raise TensorRTUnavailable(
            'TensorRT is not installed: install the tensorrt extra '
            '(pip install -e .[tensorrt]) on a machine with an NVIDIA GPU') from err
    return tensorrt


def _shape_text(shape: Sequence[int]) -> str:
    return 'x'.join(str(int(d)) for d in shape)


def trtexec_command(onnx_path: str,
                    engine_path: str,
                    workspace_mb: int = 2048,
                    fp16: bool = True,
                    profiles: Optional[List[Profile]] = None) -> str:
    """The trtexec command line that builds the same engine."""
    parts = [
        'trtexec', f'--onnx={onnx_path}', f'--saveEngine={engine_path}', '--int8',
        f'--memPoolSize=workspace:{workspace_mb}M'
    ]
    if fp16:
        parts.append('--fp16')
    for profile in (profiles or [])[:1]:  # trtexec takes one profile
        for flag, index in (('--minShapes', 0), ('--optShapes', 1), ('--maxShapes', 2)):
            shapes = ','.join(f'{name}:{_shape_text(dims[index])}'
                              for name, dims in profile.items())
            parts.append(f'{flag}={shapes}')
    return ' '.join(parts)


def polygraphy_command(onnx_path: str, profiles: Optional[List[Profile]] = None) -> str:
    """The ``polygraphy run`` command comparing TensorRT with ONNX Runtime on the same inputs
    (at the profile's optimum shape; the engine built over its whole range)."""
    parts = ['polygraphy run', onnx_path, '--onnxrt --trt --int8 --fp16']
    for profile in (profiles or [])[:1]:
        for flag, index in (('--trt-min-shapes', 0), ('--trt-opt-shapes', 1),
                            ('--trt-max-shapes', 2), ('--input-shapes', 1)):
            parts.append(flag + ' ' + ' '.join(
                f'{name}:[{",".join(str(int(d)) for d in dims[index])}]'
                for name, dims in profile.items()))
    return ' '.join(parts)


def profile_inputs(profile: Profile, index: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Standard-normal float32 inputs at a profile's minimum (0), optimum (1) or maximum (2)."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(tuple(int(d) for d in dims[index])).astype(np.float32)
            for name, dims in profile.items()}


def build_engine(onnx_path: str,
                 engine_path: str,
                 workspace_mb: int = 2048,
                 fp16: bool = True,
                 profiles: Optional[List[Profile]] = None,
                 int8: bool = True) -> str:
    """Build and serialize an engine from a Q/DQ ONNX file; written atomically.

    Explicit quantization: the Q/DQ nodes set INT8 where they stand; layers left in float may run
    in FP16 with ``fp16=True``. TensorRT < 10 also needs the INT8 builder flag, set there with
    ``int8`` (False: a float ONNX as an FP16 engine, the latency baseline). Built with detailed
    profiling verbosity, so the engine inspector reports each layer's precision.
    """
    trt = import_tensorrt()
    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f'ONNX file {onnx_path} does not exist')
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split('.')[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, 'rb') as onnx_file:
        if not parser.parse(onnx_file.read()):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ValueError(f'TensorRT cannot parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if major < 10 and int8:
        config.set_flag(trt.BuilderFlag.INT8)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    for profile_shapes in profiles or []:
        profile = builder.create_optimization_profile()
        for name, (min_shape, opt_shape, max_shape) in profile_shapes.items():
            profile.set_shape(name, tuple(min_shape), tuple(opt_shape), tuple(max_shape))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT could not build an engine from {onnx_path} (see its log)')
    write_bytes_atomic(engine_path, bytes(serialized))
    return engine_path


class TensorRTEngine:
    """A deserialized engine on the GPU; ``run`` takes and returns numpy arrays by name (torch
    CUDA tensors as buffers)."""

    def __init__(self, engine_path: str):
        self.trt = import_tensorrt()
        runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))
        with open(engine_path, 'rb') as engine_file:
            self.engine = runtime.deserialize_cuda_engine(engine_file.read())
        if self.engine is None:
            raise ValueError(f'{engine_path} is not a TensorRT engine for this TensorRT version')
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

    def _is_input(self, name: str) -> bool:
        return self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT

    def run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        import torch
        buffers, outputs = {}, {}
        for name in filter(self._is_input, self.names):
            buffers[name] = torch.from_numpy(np.ascontiguousarray(inputs[name])).cuda()
            self.context.set_input_shape(name, tuple(buffers[name].shape))
        for name in self.names:
            if not self._is_input(name):
                dtype = self.trt.nptype(self.engine.get_tensor_dtype(name))
                buffers[name] = outputs[name] = torch.empty(
                    tuple(self.context.get_tensor_shape(name)),
                    dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, device='cuda')
            self.context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.Stream()
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}

    def layer_precisions(self) -> List[dict]:
        """Each engine layer with its type, tactic and input / output formats (``Int8 NC/32HW32``,
        ``Half``, ...) from the engine inspector (``IEngineInspector``, JSON format)."""
        inspector = self.engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))
        layers = []
        for layer in info.get('Layers', []):
            if isinstance(layer, str):  # without detailed verbosity: names only
                layers.append({'name': layer})
                continue
            layers.append({
                'name': layer.get('Name', ''),
                'type': layer.get('LayerType', ''),
                'tactic': layer.get('TacticName', ''),
                'inputs': [t.get('Format/Datatype', '') for t in layer.get('Inputs', [])],
                'outputs': [t.get('Format/Datatype', '') for t in layer.get('Outputs', [])]
            })
        return layers
