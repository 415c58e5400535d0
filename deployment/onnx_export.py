"""Export a (quantized) torch model to ONNX, atomically."""
import logging
import warnings
from typing import Optional, Sequence, Tuple

import onnx
import torch
from torch import nn

from quantization.fileio import atomic_output

logger = logging.getLogger(__name__)


def _opset_of(path: str) -> int:
    return next(o.version for o in onnx.load(path).opset_import if o.domain in ('', 'ai.onnx'))


def _torch_export(model, args, path, dynamo, opset_version, input_names, output_names,
                  dynamic_axes):
    # The exporters log tracebacks of their own fallbacks (handled here) at WARNING.
    quiet_loggers = [logging.getLogger(name) for name in ('onnxscript', 'torch.onnx')]
    levels = [quiet.level for quiet in quiet_loggers]
    for quiet in quiet_loggers:
        quiet.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            torch.onnx.export(
                model,
                args,
                path,
                dynamo=dynamo,
                opset_version=opset_version,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                external_data=False,
                verbose=False if dynamo else None)
    finally:
        for quiet, level in zip(quiet_loggers, levels):
            quiet.setLevel(level)


def export_onnx(model: nn.Module,
                args: Tuple,
                path: str,
                input_names: Sequence[str],
                output_names: Sequence[str],
                opset_version: int = 17,
                dynamic_axes: Optional[dict] = None,
                dynamo: bool = True) -> str:
    """Export ``model(*args)`` to ``path`` and check it with ``onnx.checker``.

    Quantizers export as QuantizeLinear/DequantizeLinear with constant scales and zero-points.
    ``dynamo=True`` is the exporter torch 2.13 recommends. It writes opset 18 and converts down;
    where that conversion fails (it does for ReduceMean at opset 17) it silently keeps opset 18,
    so the legacy TorchScript exporter, which writes the requested opset directly and gives the
    same Q/DQ graph, exports that case instead. The file is written to ``path + '.tmp'`` and
    renamed only after the check passes, so a failed export leaves nothing under ``path``.

    Args:
        dynamic_axes (dict, optional): ``{input or output name: {axis: name}}``.
    """
    if opset_version < 13:
        raise ValueError(f'opset {opset_version} has no per-channel DequantizeLinear; use >= 13')
    was_training = model.training
    model.eval()
    try:
        with atomic_output(path, '.onnx') as tmp_path:
            _torch_export(model, args, tmp_path, dynamo, opset_version, input_names,
                          output_names, dynamic_axes)
            if dynamo and _opset_of(tmp_path) != opset_version:
                logger.info('the dynamo exporter could not write opset %d; using the legacy '
                            'exporter', opset_version)
                _torch_export(model, args, tmp_path, False, opset_version, input_names,
                              output_names, dynamic_axes)
            onnx.checker.check_model(onnx.load(tmp_path))
    finally:
        model.train(was_training)
    return path
