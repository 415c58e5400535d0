"""Learned activation ranges: reach a brute-force search's optimum on a toy model, put the
calibrated ranges back when training made things worse, and leave the model as it found it;
the prediction-difference distance by hand."""
import copy
import itertools
import math

import pytest
import torch
from torch import nn

from quantization import CalibrationManager, QuantRecipe
from quantization.range_learning import (learn_ranges, learnable_quantizers, relative_squared_error,
                                         softmax_kl)


def heavy_tailed(n: int, seed: int) -> torch.Tensor:
    """Inputs whose max is far beyond their bulk: a max calibration wastes most of the grid."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=generator)
    return x * torch.exp(torch.randn(n, 1, generator=generator))


def calibrated_model(batches):
    """(quantized model, 4-bit inputs calibrated with max, and its float twin)."""
    torch.manual_seed(0)
    float_model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    model = copy.deepcopy(float_model)
    QuantRecipe(quant_desc_input=dict(num_bits=4, calib_method='max')).apply(model)
    CalibrationManager(model, progress=False).calibrate(batches, len(batches), 'max')
    return model, float_model


@torch.no_grad()
def mean_distance(model, float_model, batches) -> float:
    return sum(float(relative_squared_error(model(b), float_model(b))) for b in batches) / len(
        batches)


def test_learned_ranges_reach_the_brute_force_optimum_of_the_output_error():
    batches = [heavy_tailed(512, seed) for seed in range(4)]
    model, float_model = calibrated_model(batches)
    quantizers = list(learnable_quantizers(model).values())
    assert len(quantizers) == 2  # the two Linear inputs; weights are not learned
    weights = [p.detach().clone() for p in model.parameters()]
    calibrated_amax = [float(q.amax) for q in quantizers]
    start = mean_distance(model, float_model, batches)
    # brute force: every pair of amax on a grid of fractions of the calibrated (max) ranges
    best = float('inf')
    fractions = [k / 40 for k in range(1, 41)]
    for first, second in itertools.product(fractions, fractions):
        quantizers[0].set_amax(first * calibrated_amax[0])
        quantizers[1].set_amax(second * calibrated_amax[1])
        best = min(best, mean_distance(model, float_model, batches))
    for quantizer, amax in zip(quantizers, calibrated_amax):
        quantizer.set_amax(amax)
    result = learn_ranges(model, batches, 4, output_module='', steps=300, lr=0.02)
    learned = mean_distance(model, float_model, batches)
    assert best < 0.5 * start, (best, start)  # the toy's max ranges leave room to win
    assert result.kept and result.loss_after == pytest.approx(learned, rel=1e-5)
    assert learned < 1.1 * best, (learned, best, start)
    assert result.loss_before == pytest.approx(start, rel=1e-5)
    # on inputs it did not see, too
    held_out = [heavy_tailed(2048, 10)]
    after = mean_distance(model, float_model, held_out)
    for quantizer, amax in zip(quantizers, calibrated_amax):
        quantizer.set_amax(amax)
    assert after < 0.7 * mean_distance(model, float_model, held_out)
    # the weights are untouched, the ranges are buffers again, the model trains as before
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights))
    assert all(p.requires_grad for p in model.parameters()) and model.training
    assert not any(q.learns_amax for q in quantizers)
    assert sorted(k for k in model.state_dict() if k.endswith('amax')) == [
        '0.input_quantizer.amax', '0.weight_quantizer.amax', '2.input_quantizer.amax',
        '2.weight_quantizer.amax'
    ]


def test_a_step_that_makes_things_worse_gives_back_the_calibrated_ranges():
    batches = [heavy_tailed(256, seed) for seed in range(2)]
    model, _ = calibrated_model(batches)
    before = {name: q.amax.clone() for name, q in learnable_quantizers(model).items()}
    # one Adam step of 5 times each range overshoots by far
    result = learn_ranges(model, batches, 2, output_module='', steps=1, lr=5.0)
    assert not result.kept and result.loss_after > result.loss_before
    for name, quantizer in learnable_quantizers(model).items():
        assert torch.equal(quantizer.amax, before[name]) and not quantizer.learns_amax


def test_bad_arguments_are_named():
    batches = [heavy_tailed(8, 0)]
    model, _ = calibrated_model(batches)
    with pytest.raises(ValueError, match='steps, num_batches >= 1'):
        learn_ranges(model, batches, 1, '', steps=0)
    with pytest.raises(ValueError, match='holds no batch'):
        learn_ranges(model, [], 1, '')
    with pytest.raises(AttributeError):
        learn_ranges(model, batches, 1, 'head')


def test_softmax_kl_by_hand():
    # (1, 2 classes, 2 positions): the first position predicts (0.75, 0.25) where float says
    # (0.5, 0.5); the second agrees. KL = 0.5 ln(0.5 / 0.75) + 0.5 ln(0.5 / 0.25), halved.
    want = torch.zeros(1, 2, 2)
    got = torch.tensor([[[math.log(3), 0.0], [0.0, 0.0]]])
    expected = (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) / 2
    assert float(softmax_kl(got, want)) == pytest.approx(expected, rel=1e-6)
    assert float(softmax_kl(want + 7.0, want)) == pytest.approx(0, abs=1e-7)  # shifts are free
