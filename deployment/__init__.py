"""The artifact side: ONNX / Q/DQ ONNX export, graph clean-up, ONNX Runtime verification,
TensorRT engine building and the deploy pipeline's exporters."""
from .exporters import DEPLOY_EXPORTERS, GraphSpec, WholeModelExporter
from .onnx_export import export_onnx
from .ort_runner import OnnxRuntimeModel

__all__ = ['export_onnx', 'OnnxRuntimeModel', 'DEPLOY_EXPORTERS', 'GraphSpec', 'WholeModelExporter']
