"""The quantization arithmetic, written once: grid, scale, quantize and dequantize, in torch
(fake quantization for PyTorch) and in numpy (ONNX's QuantizeLinear / DequantizeLinear on
constants, for the graph passes).

``q_max = 2**(bits - 1) - 1`` signed (127 for INT8), ``2**bits - 1`` unsigned;
``scale = amax / q_max``; ``q = clamp(round_half_even(x / scale) + zero_point, q_min, q_max)``;
``x_dq = (q - zero_point) * scale``; fake quantization is ``x_fq = x_dq(q(x))`` with zero-point
0. The gradient is the straight-through estimator of torch's fake-quant kernels: 1 inside
``[q_min * scale, q_max * scale]`` and 0 outside.
"""
from typing import Optional

import numpy as np
import torch

#: amax at or below this is a dead channel (all its values are ~0). Its scale is computed from
#: an amax of 1.0 instead, so the scale is never 0 and its values still quantize to 0.
DEAD_AMAX = 1e-12
#: A learned amax (:func:`fake_quant_learned_amax`) is kept at or above this.
MIN_LEARNED_AMAX = 1e-6


def grid_max(num_bits: int, unsigned: bool = False) -> int:
    """Largest integer of the grid: 127 for signed INT8, 255 for unsigned."""
    return 2**num_bits - 1 if unsigned else 2**(num_bits - 1) - 1


def scale_from_amax(amax: torch.Tensor, quant_max: int) -> torch.Tensor:
    """Quantization step from amax.

    Args:
        amax (Tensor): () per tensor or (C,) per channel; in input units, >= 0.
        quant_max (int): Largest integer of the grid (127 for signed INT8).

    Returns:
        Tensor: float32 scale of amax's shape, always > 0.
    """
    amax = amax.detach().float()
    safe_amax = torch.where(amax > DEAD_AMAX, amax, torch.ones_like(amax))
    return safe_amax / quant_max


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: Optional[int],
               quant_min: int, quant_max: int) -> torch.Tensor:
    """Quantize and dequantize ``x`` (straight-through gradient).

    Args:
        x (Tensor): Any shape; float16/bfloat16 inputs are computed in float32 and cast back.
        scale (Tensor): () per tensor, or (x.shape[axis],) per channel.
        zero_point (Tensor): int32, same shape as scale (zeros for symmetric quantization).
        axis (int, optional): Channel axis, None for per tensor.
        quant_min (int): Smallest integer of the grid.
        quant_max (int): Largest integer of the grid.

    Returns:
        Tensor: ``clamp(round(x / scale), quant_min, quant_max) * scale`` in x's dtype.
    """
    in_dtype = x.dtype
    if in_dtype != torch.float32:
        x = x.float()
    if axis is None:
        out = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)
    else:
        out = torch.fake_quantize_per_channel_affine(x, scale, zero_point, axis % x.dim(),
                                                     quant_min, quant_max)
    return out if in_dtype == torch.float32 else out.to(in_dtype)


class _LearnedAmaxFakeQuant(torch.autograd.Function):
    """Fake quantization with gradients for ``x`` and ``amax`` (LSQ, Esser et al. 2020)."""

    @staticmethod
    def forward(ctx, x, amax, axis, quant_min, quant_max, grad_scale):
        shape = [1] * x.dim()
        if axis is not None:
            shape[axis] = -1
        scale = (amax.clamp_min(MIN_LEARNED_AMAX) / quant_max).reshape(shape)
        ratio = x / scale
        rounded = torch.round(ratio)
        inside = (rounded >= quant_min) & (rounded <= quant_max)
        quantized = rounded.clamp(quant_min, quant_max)
        ctx.save_for_backward(inside, quantized - torch.where(inside, ratio, 0))
        ctx.reduce_dims = [d for d in range(x.dim()) if shape[d] == 1]
        ctx.amax_shape, ctx.quant_max, ctx.grad_scale = amax.shape, quant_max, grad_scale
        return quantized * scale

    @staticmethod
    def backward(ctx, grad_out):
        inside, d_out_d_scale = ctx.saved_tensors
        grad_x = grad_out * inside
        grad_scale = (grad_out * d_out_d_scale).sum(dim=ctx.reduce_dims)
        grad_amax = grad_scale.reshape(ctx.amax_shape) * (ctx.grad_scale / ctx.quant_max)
        return grad_x, grad_amax, None, None, None, None


def fake_quant_learned_amax(x: torch.Tensor, amax: torch.Tensor, axis: Optional[int],
                            quant_min: int, quant_max: int) -> torch.Tensor:
    """:func:`fake_quant` with ``scale = amax / quant_max`` and a gradient for ``amax`` (LSQ).

    ``d out / d scale`` is ``round(x / scale) - x / scale`` inside the grid and the clipping
    bound (``quant_min`` or ``quant_max``) outside; ``x`` gets the straight-through gradient of
    :func:`fake_quant`. amax's gradient is scaled by ``1 / sqrt(x.numel() * quant_max)``, as in
    LSQ and torch's ``_LearnableFakeQuantize``, so a range moves at a pace independent of the
    tensor's size.

    Args:
        x (Tensor): Any shape, float32.
        amax (Tensor): () per tensor or (x.shape[axis],) per channel; in input units, used
            from :data:`MIN_LEARNED_AMAX` up.
        axis (int, optional): Channel axis, None for per tensor.
        quant_min (int): Smallest integer of the grid.
        quant_max (int): Largest integer of the grid.

    Returns:
        Tensor: ``clamp(round(x / scale), quant_min, quant_max) * scale``, x's shape.
    """
    axis = None if axis is None else axis % x.dim()
    grad_scale = 1.0 / float(x.numel() * quant_max)**0.5
    return _LearnedAmaxFakeQuant.apply(x, amax, axis, quant_min, quant_max, grad_scale)


def quantize_dequantize(x: torch.Tensor, scale: torch.Tensor, quant_min: int,
                        quant_max: int) -> torch.Tensor:
    """``clamp(round(x / scale), quant_min, quant_max) * scale`` for any broadcastable ``scale``
    (e.g. one row per candidate amax in the MSE search), without the autograd of
    :func:`fake_quant`."""
    return torch.clamp(torch.round(x / scale), quant_min, quant_max) * scale


def _per_axis(array: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """A per-channel (C,) ``array`` shaped to broadcast along ``axis`` of an ``ndim`` tensor."""
    if np.ndim(array) == 0 or np.size(array) == 1:
        return np.reshape(array, ())
    shape = [1] * ndim
    shape[axis] = -1
    return np.reshape(array, shape)


def quantize_np(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                axis: int = 1) -> np.ndarray:
    """ONNX QuantizeLinear: ``saturate(round_half_even(x / scale) + zero_point)`` in the
    zero-point's integer type (per channel along ``axis`` when ``scale`` has several values)."""
    values = np.asarray(values, np.float32)
    scale = _per_axis(np.asarray(scale, np.float32), values.ndim, axis)
    zero_point = np.asarray(zero_point)
    info = np.iinfo(zero_point.dtype)
    offset = _per_axis(zero_point.astype(np.int32), values.ndim, axis)
    quantized = np.rint(values / scale) + offset
    return np.asarray(np.clip(quantized, info.min, info.max), zero_point.dtype)


def dequantize_np(quantized: np.ndarray, scale: np.ndarray, zero_point=0,
                  axis: int = 1) -> np.ndarray:
    """ONNX DequantizeLinear: ``(q - zero_point) * scale`` as float32."""
    quantized = np.asarray(quantized)
    scale = _per_axis(np.asarray(scale, np.float32), quantized.ndim, axis)
    offset = _per_axis(np.asarray(zero_point).astype(np.float32), quantized.ndim, axis)
    return np.asarray((quantized.astype(np.float32) - offset) * scale, np.float32)


def unsigned_scale(signed_scale: np.ndarray, num_bits: int = 8) -> np.ndarray:
    """The scale that clips at the same amax on the unsigned grid (``amax / 255`` for INT8):
    a non-negative tensor (after ReLU) keeps its range on a grid twice as fine."""
    amax = np.asarray(signed_scale, np.float32) * grid_max(num_bits)
    return np.asarray(amax / grid_max(num_bits, unsigned=True), np.float32)


def reduce_amax(x: torch.Tensor, axis: Optional[int]) -> torch.Tensor:
    """Absolute maximum of ``x``: () per tensor, (x.shape[axis],) per channel."""
    x = x.detach()
    if axis is None:
        return x.abs().amax().float()
    axis = axis % x.dim()
    reduce_dims = [d for d in range(x.dim()) if d != axis]
    return x.abs().amax(dim=reduce_dims).float() if reduce_dims else x.abs().float()


def _register_fake_quant_shape_kernels():
    """Give torch.export / torch.compile the output shapes of the fake-quant kernels.

    torch 2.13 has no fake-tensor (meta) kernel for the ops ``fake_quantize_per_*_affine``
    dispatch to, so tracing them with a dynamic dimension (e.g. a dynamic batch in the dynamo
    ONNX exporter) fails. Their outputs are ``(like x, bool mask like x)``. Skipped where torch
    already has a kernel.
    """
    for op_name in ('aten::_fake_quantize_per_tensor_affine_cachemask_tensor_qparams',
                    'aten::fake_quantize_per_channel_affine_cachemask'):
        try:
            torch.library.register_fake(op_name)(lambda x, *args, **kwargs: (torch.empty_like(
                x), torch.empty_like(x, dtype=torch.bool)))
        except RuntimeError:
            pass  # torch provides one already


_register_fake_quant_shape_kernels()
