"""The artifact side: ONNX / Q/DQ ONNX export, graph clean-up and placements, verification in
ONNX Runtime and OpenVINO (with its per-layer precision report), TensorRT engine building and
checks, and the deploy pipeline's exporters."""
from .exporters import DEPLOY_EXPORTERS, GraphSpec, WholeModelExporter
from .onnx_export import export_onnx
from .ort_runner import OnnxRuntimeModel

__all__ = ['export_onnx', 'OnnxRuntimeModel', 'DEPLOY_EXPORTERS', 'GraphSpec', 'WholeModelExporter']
