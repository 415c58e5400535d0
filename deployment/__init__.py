"""The artifact side: ONNX export and ONNX Runtime execution (TensorRT comes with issue 3)."""
from .onnx_export import export_onnx
from .ort_runner import OnnxRuntimeModel

__all__ = ['export_onnx', 'OnnxRuntimeModel']
