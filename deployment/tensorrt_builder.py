"""TensorRT INT8 engines from Q/DQ ONNX (explicit quantization), with the real TensorRT API.

TensorRT is an optional extra: everything here raises :class:`TensorRTUnavailable` with one line
where it is not installed. :func:`trtexec_command` needs no TensorRT and gives the equivalent
command line for a GPU machine.
"""
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


def build_engine(onnx_path: str,
                 engine_path: str,
                 workspace_mb: int = 2048,
                 fp16: bool = True,
                 profiles: Optional[List[Profile]] = None) -> str:
    """Build and serialize an engine from a Q/DQ ONNX file; written atomically.

    Explicit quantization: the Q/DQ nodes set INT8 where they stand; layers left in float may run
    in FP16 with ``fp16=True``. TensorRT < 10 also needs the INT8 builder flag, which is set there.
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
    if major < 10:
        config.set_flag(trt.BuilderFlag.INT8)
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


def run_engine(engine_path: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Run an engine once on the GPU (torch CUDA tensors as buffers); outputs by name."""
    trt = import_tensorrt()
    import torch
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    with open(engine_path, 'rb') as engine_file:
        engine = runtime.deserialize_cuda_engine(engine_file.read())
    if engine is None:
        raise ValueError(f'{engine_path} is not a TensorRT engine for this TensorRT version')
    context = engine.create_execution_context()
    buffers, outputs = {}, {}
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            buffers[name] = torch.from_numpy(np.ascontiguousarray(inputs[name])).cuda()
            context.set_input_shape(name, tuple(buffers[name].shape))
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            dtype = torch.from_numpy(np.zeros(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
            buffers[name] = torch.empty(
                tuple(context.get_tensor_shape(name)), dtype=dtype, device='cuda')
            outputs[name] = buffers[name]
        context.set_tensor_address(name, buffers[name].data_ptr())
    stream = torch.cuda.Stream()
    context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}
