"""AdaRound: beats nearest rounding on a toy problem, stays on the weight grid, and the exported
Q/DQ ONNX carries exactly the learned INT8 weights."""
import copy

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from quantization import CalibrationManager, QuantRecipe
from quantization.adaround import adaround


def calibrated(model: nn.Module, batches, weight_bits: int = 4):
    QuantRecipe(quant_desc_weight={
        'QuantLinear': dict(num_bits=weight_bits, axis=0),
        'QuantConv2d': dict(num_bits=weight_bits, axis=0)
    }).apply(model)
    CalibrationManager(model, progress=False).calibrate(batches, len(batches), 'max')
    return model


def correlated_inputs(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(32, 32, generator=torch.Generator().manual_seed(7))
    return torch.randn(n, 32, generator=generator) @ mixing / 4


def test_adaround_beats_nearest_rounding_on_frames_it_did_not_see():
    torch.manual_seed(0)
    float_layer = nn.Linear(32, 16)
    model = calibrated(nn.Sequential(copy.deepcopy(float_layer)), [correlated_inputs(256, 0)])
    calibrated_amax = model[0].weight_quantizer.amax.clone()
    held_out = correlated_inputs(2048, 1)
    with torch.no_grad():
        target = float_layer(held_out)
        nearest_error = float(((model(held_out) - target)**2).mean())
    results = adaround(model, [correlated_inputs(256, s) for s in range(2, 6)], num_batches=4,
                       iterations=400, crop=16, progress=False)
    with torch.no_grad():
        learned_error = float(((model(held_out) - target)**2).mean())
    assert results[0].learned_error < results[0].nearest_error
    assert 0.01 < results[0].flipped < 0.5
    assert learned_error < 0.8 * nearest_error, (learned_error, nearest_error)
    # the weight now lies on the grid of the unchanged amax: fake-quant leaves it as it is
    layer = model[0]
    assert torch.equal(layer.weight_quantizer.amax, calibrated_amax)
    assert torch.equal(layer.weight_quantizer(layer.weight), layer.weight)


def test_exported_qdq_onnx_holds_exactly_the_learned_int8_weights(tmp_path):
    from deployment.graph_passes import clean_up_onnx
    from deployment.onnx_export import export_onnx
    torch.manual_seed(0)
    batches = [torch.randn(4, 3, 16, 16) for _ in range(2)]
    model = calibrated(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(8, 4, 3, padding=1)), batches, weight_bits=8)
    before = [m.weight.detach().clone() for m in (model[0], model[2])]
    results = adaround(model, batches, num_batches=2, iterations=200, crop=8, progress=False)
    assert [r.layer for r in results] == ['0', '2'] and any(r.flipped > 0 for r in results)
    expected = []
    for layer, original in zip((model[0], model[2]), before):
        scale = layer.weight_quantizer.scale.reshape(-1, 1, 1, 1)
        learned = torch.round(layer.weight.detach() / scale)
        assert (learned - original / scale).abs().max() < 1  # up or down, never further
        expected.append(learned.to(torch.int8).numpy())
    raw, clean = str(tmp_path / 'raw.onnx'), str(tmp_path / 'clean.onnx')
    export_onnx(model, (batches[0], ), raw, ['x'], ['y'], dynamo=False)
    clean_up_onnx(raw, clean)
    graph = onnx.load(clean).graph
    int8_weights = [numpy_helper.to_array(t) for t in graph.initializer
                    if t.data_type == onnx.TensorProto.INT8 and t.dims and len(t.dims) == 4]
    assert len(int8_weights) == 2
    for got, want in zip(sorted(int8_weights, key=lambda a: a.shape),
                         sorted(expected, key=lambda a: a.shape)):
        np.testing.assert_array_equal(got, want)
