"""AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"):
learn, layer by layer, whether each weight rounds up or down, so the layer's output on
calibration data comes closest to the float layer's.

For a weight ``w`` on the grid of step ``s`` (the weight quantizer's calibrated amax / q_max),
``w_soft = s * clamp(floor(w / s) + h(V), q_min, q_max)`` with the rectified sigmoid
``h(V) = clamp(sigmoid(V) * 1.2 - 0.1, 0, 1)``, ``V`` initialised so that ``w_soft = w``.
Minimised: the mean squared error of the layer's output (its input quantized, as in the
quantized model, against the float layer on the float model's input) plus
``reg * sum(1 - |2 h(V) - 1| ** beta)`` with ``beta`` annealed from 20 to 2 after a warm-up,
which drives every ``h`` to 0 or 1. The result replaces the float weight by the grid values
``s * q`` themselves and keeps the weight amax fixed, so the weight quantizer (PyTorch's
fake-quant, the exported QuantizeLinear) rounds it to exactly the learned integers ``q``.

Each layer trains on random crops of its inputs (positions for Linear) from the calibration
batches, so a layer of a large BEV map costs as little as one of a small image.
"""
import math
from dataclasses import dataclass
from itertools import islice
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .calibration import ForwardFn, default_forward
from .method_choice import float_layer_inputs, quantized_layer_inputs
from .nn._quant_layer import QuantLayerMixin
from .tensor_quantizer import TensorQuantizer

_GAMMA, _ZETA = -0.1, 1.1


@dataclass
class AdaRoundResult:
    """One layer's rounding: output MSE on its training crops with nearest and with learned
    rounding, and the fraction of its weights that round the other way than nearest."""
    layer: str
    nearest_error: float
    learned_error: float
    flipped: float


def _rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0, 1)


def _weight_grid(layer: nn.Module) -> Tuple[torch.Tensor, int, int]:
    """The weight quantizer's step broadcast to the weight's shape, and its integer range."""
    quantizer: TensorQuantizer = layer.weight_quantizer
    desc = quantizer.quant_desc
    scale = quantizer.scale.detach()
    if desc.axis is not None:
        shape = [1] * layer.weight.dim()
        shape[desc.axis] = -1
        scale = scale.reshape(shape)
    return scale, desc.quant_min, desc.quant_max


def _layer_output(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor,
                  quantize_input: bool) -> torch.Tensor:
    """The layer's output (fused activation included) with ``weight`` in place of its own and
    its weight quantizer bypassed."""
    if quantize_input:
        x = layer.input_quantizer(x)
    if isinstance(layer, nn.Linear):
        out = F.linear(x, weight, layer.bias)
    elif isinstance(layer, nn.ConvTranspose2d):
        out = F.conv_transpose2d(x, weight, layer.bias, layer.stride, layer.padding,
                                 layer.output_padding, layer.groups, layer.dilation)
    else:
        out = layer._conv_forward(x, weight, layer.bias)
    return layer.fused_act(out)


def _crops(pairs: List[Tuple[torch.Tensor, torch.Tensor]], size: int,
           generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """One random crop (conv inputs: ``size`` x ``size`` of one sample; Linear inputs: up to
    ``size**2`` rows) of the same place in a random (float input, quantized input) pair."""
    float_input, quant_input = pairs[int(torch.randint(len(pairs), (1, ), generator=generator))]
    if float_input.dim() == 4:
        n, _, height, width = float_input.shape
        i = int(torch.randint(n, (1, ), generator=generator))
        top = int(torch.randint(max(1, height - size + 1), (1, ), generator=generator))
        left = int(torch.randint(max(1, width - size + 1), (1, ), generator=generator))
        window = (slice(i, i + 1), slice(None), slice(top, top + size), slice(left, left + size))
        return float_input[window], quant_input[window]
    rows = float_input.reshape(-1, float_input.shape[-1])
    chosen = torch.randint(rows.shape[0], (min(rows.shape[0], size * size), ),
                           generator=generator)
    return rows[chosen], quant_input.reshape(-1, float_input.shape[-1])[chosen]


def adaround_layer(layer: nn.Module,
                   pairs: List[Tuple[torch.Tensor, torch.Tensor]],
                   name: str = '',
                   iterations: int = 500,
                   crop: int = 32,
                   lr: float = 1e-2,
                   reg: float = 0.01,
                   warmup: float = 0.2,
                   beta: Tuple[float, float] = (20.0, 2.0),
                   seed: int = 0) -> AdaRoundResult:
    """Learn the rounding of one calibrated quantized layer from (float-model input,
    quantized-model input) pairs and write it into the layer's weight (see the module text)."""
    generator = torch.Generator().manual_seed(seed)
    weight = layer.weight.detach()
    scale, quant_min, quant_max = _weight_grid(layer)
    floor = torch.floor(weight / scale)
    rest = (weight / scale - floor).clamp(1e-4, 1 - 1e-4)
    v = nn.Parameter(-torch.log((_ZETA - _GAMMA) / (rest - _GAMMA) - 1))
    optimizer = torch.optim.Adam([v], lr=lr)
    nearest = torch.clamp(torch.round(weight / scale), quant_min, quant_max) * scale
    samples = [_crops(pairs, crop, generator) for _ in range(min(8, iterations))]

    def error(candidate: torch.Tensor) -> float:
        with torch.no_grad():
            return sum(float(F.mse_loss(_layer_output(layer, q, candidate, True),
                                        _layer_output(layer, f, weight, False)))
                       for f, q in samples) / len(samples)

    nearest_error = error(nearest)
    warm = int(warmup * iterations)
    for step in range(iterations):
        float_crop, quant_crop = _crops(pairs, crop, generator)
        with torch.no_grad():
            target = _layer_output(layer, float_crop, weight, False)
        soft = scale * torch.clamp(floor + _rectified_sigmoid(v), quant_min, quant_max)
        loss = F.mse_loss(_layer_output(layer, quant_crop, soft, True), target)
        if step >= warm:
            progress = (step - warm) / max(1, iterations - warm)
            b = beta[1] + 0.5 * (beta[0] - beta[1]) * (1 + math.cos(math.pi * progress))
            h = _rectified_sigmoid(v)
            loss = loss + reg * (1 - (2 * h - 1).abs().pow(b)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        integers = torch.clamp(floor + (v >= 0).float(), quant_min, quant_max)
        learned = integers * scale
        learned_error = error(learned)
        if learned_error > nearest_error:  # never worse than nearest rounding
            learned, learned_error = nearest, nearest_error
        flipped = float((learned != nearest).float().mean())
        layer.weight.copy_(learned)
    return AdaRoundResult(name, nearest_error, learned_error, flipped)


def adaround(model: nn.Module,
             data: Iterable,
             num_batches: int = 2,
             forward_fn: Optional[ForwardFn] = None,
             progress: bool = True,
             **layer_kwargs) -> List[AdaRoundResult]:
    """AdaRound every quantized layer whose weight quantizer is enabled and calibrated, in
    module order; each layer's quantized inputs come from the model with the layers before it
    already rounded. Call after calibration; ``layer_kwargs`` go to :func:`adaround_layer`.
    The first ``num_batches`` batches of ``data`` are kept and fed to every pass, so float and
    quantized inputs pair up even when the loader augments at random."""
    forward_fn = forward_fn or default_forward
    batches = list(islice(data, num_batches))
    layers: Dict[str, nn.Module] = {
        name: m for name, m in model.named_modules()
        if isinstance(m, QuantLayerMixin) and m.weight_quantizer.is_enabled
        and m.weight_quantizer.has_amax
    }
    float_inputs = float_layer_inputs(model, layers, batches, len(batches), forward_fn)
    results = []
    for index, (name, layer) in enumerate(layers.items()):
        calls = float_inputs.pop(name)
        if len(calls) != len(batches):
            raise ValueError(f'{name}: called {len(calls)} times in {len(batches)} forwards; '
                             'AdaRound pairs one call per forward')
        quant_inputs = quantized_layer_inputs(model, layer, batches, forward_fn)
        pairs = [(args[0], quantized[0]) for args, quantized in zip(calls, quant_inputs)]
        with torch.enable_grad():
            result = adaround_layer(layer, pairs, name, **layer_kwargs)
        results.append(result)
        if progress:
            print(f'AdaRound {index + 1}/{len(layers)} {name}: output MSE '
                  f'{result.nearest_error:.3g} -> {result.learned_error:.3g}, '
                  f'{100 * result.flipped:.1f} % of weights flipped', flush=True)
    return results
