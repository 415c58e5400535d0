"""choose_amax_methods against a second implementation: each layer's output error per method
computed by hand with F.conv2d on fake-quantized inputs and weights."""
import pytest
import torch
import torch.nn.functional as F

from quantization import CalibrationManager, QuantRecipe
from quantization.method_choice import choose_amax_methods

METHODS = ('max', 'percentile', 'mse', 'entropy')


def fake_quant(x, amax, axis=None):
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(x, float(amax) / 127, 0, -127, 127)
    scale = (amax / 127).flatten().float()
    return torch.fake_quantize_per_channel_affine(x, scale, torch.zeros_like(scale).int(),
                                                  axis, -127, 127)


def two_quantized_convs():
    """Conv-ReLU-Conv quantized (ReLU not fused), seeded, and its float (weight, bias) pairs."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 4, 3, padding=1)).eval()
    weights = [(model[i].weight.detach().clone(), model[i].bias.detach().clone()) for i in (0, 2)]
    QuantRecipe(fuse_relu=False).apply(model)
    return model, weights


def test_each_layer_gets_the_method_with_the_smallest_output_error():
    model, weights = two_quantized_convs()
    # rare huge outliers: max's grid is then too coarse for everything else in the first layer
    batches = [torch.randn(4, 3, 16, 16) * (1 + 300 * (torch.rand(4, 3, 16, 16) > 0.9995))
               for _ in range(3)]
    CalibrationManager(model, progress=False).calibrate(batches, 3, 'max')
    choices = {c.layer: c for c in choose_amax_methods(model, batches, 2, METHODS,
                                                       percentile=99.9)}
    assert set(choices) == {'0', '2'}
    with torch.no_grad():
        layer_inputs = {'0': batches[:2],
                        '2': [F.relu(F.conv2d(x, *weights[0], padding=1)) for x in batches[:2]]}
    for index, name in ((0, '0'), (2, '2')):
        weight, bias = weights[index // 2]
        quantizer = model[index].input_quantizer
        w_q = fake_quant(weight, model[index].weight_quantizer.amax, axis=0)
        expected = {}
        for method in METHODS:
            kwargs = {'percentile': 99.9} if method == 'percentile' else {}
            amax = quantizer._calibrator.compute_amax(method, **kwargs)
            squared, count = 0.0, 0
            for x in layer_inputs[name]:
                want = F.conv2d(x, weight, bias, padding=1)
                got = F.conv2d(fake_quant(x, amax), w_q, bias, padding=1)
                squared += float(((got - want)**2).sum())
                count += want.numel()
            expected[method] = squared / count
        assert choices[name].errors == pytest.approx(expected, rel=1e-4)
        best = min(METHODS, key=lambda m: expected[m])
        assert choices[name].method == best
        kwargs = {'percentile': 99.9} if best == 'percentile' else {}
        assert quantizer.amax.item() == quantizer._calibrator.compute_amax(best, **kwargs).item()
    assert choices['0'].method != 'max' and choices['0'].errors['max'] > 2 * min(
        choices['0'].errors.values())
    with pytest.raises(ValueError, match="unknown amax methods \\['kl'\\]"):
        choose_amax_methods(model, batches, 1, ('kl', ))


def test_resize_importance_max_pools_coarser_maps_and_repeats_for_finer_ones():
    from quantization.method_choice import resize_importance
    weights = torch.tensor([[[[0., 1., 0., 0.], [0., 0., 0., 0.], [0., 0., 0., 0.5],
                              [0., 0., 0., 0.]]]])
    assert torch.equal(resize_importance(weights, (2, 2)),
                       torch.tensor([[[[1., 0.], [0., 0.5]]]]))
    assert torch.equal(resize_importance(weights, (8, 8))[0, 0, :2, 2:4], torch.ones(2, 2))
    assert resize_importance(weights, (4, 4)) is weights


def test_importance_weighted_error_and_the_grid_of_fractions_of_max():
    """Against a brute force: every candidate's weighted error recomputed by hand; the weights
    select one corner of the image, whose values are small, so the chosen amax is smaller than
    the one the unweighted error picks."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1)).eval()
    weight, bias = model[0].weight.detach().clone(), model[0].bias.detach().clone()
    QuantRecipe(fuse_relu=False).apply(model)
    batches = []
    for _ in range(2):
        x = torch.randn(2, 2, 8, 8) * 0.05
        x[:, :, 4:, :] = torch.randn(2, 2, 4, 8) * 4  # large values where nothing matters
        batches.append(x)
    importance = torch.zeros(2, 1, 4, 4)
    importance[:, :, :2, :] = 1.0  # the top half, at half the resolution (max-pooled)
    importance[1, :, 0, 0] = 3.0

    def importance_fn(m, batch):
        m(batch)
        return importance

    CalibrationManager(model, progress=False).calibrate(batches, 2, 'max')
    calibrator = model[0].input_quantizer._calibrator
    w_q = fake_quant(weight, model[0].weight_quantizer.amax, axis=0)
    full = F.interpolate(importance, size=(8, 8), mode='nearest')
    plain = {c.layer: c for c in choose_amax_methods(model, batches, 2, METHODS, grid=10)}['0']
    chosen = {c.layer: c for c in choose_amax_methods(
        model, batches, 2, METHODS, importance_fn=importance_fn, grid=10)}['0']
    largest = float(calibrator.compute_amax('max'))
    amaxes = {m: float(calibrator.compute_amax(m)) for m in METHODS}
    amaxes.update({f'max x{k / 10:.2f}': largest * k / 10 for k in range(1, 11)})
    assert set(chosen.errors) == set(amaxes)
    for name, amax in amaxes.items():
        squared = weighted = 0.0
        for x in batches:
            want = F.conv2d(x, weight, bias)
            got = F.conv2d(fake_quant(x, amax), w_q, bias)
            squared += float(((got - want)**2).sum()) / (2 * want.numel())
            weighted += float(((got - want)**2 * full).sum())
        assert chosen.errors[name] == pytest.approx(weighted / (2 * 3 * float(full.sum())),
                                                    rel=1e-4)
        assert plain.errors[name] == pytest.approx(squared, rel=1e-4)
    assert chosen.method == min(amaxes, key=lambda n: chosen.errors[n])
    assert chosen.amax == pytest.approx(amaxes[chosen.method])
    assert model[0].input_quantizer.amax.item() == pytest.approx(chosen.amax)
    assert chosen.method == 'max x0.10' and chosen.amax < 0.5 * plain.amax
    exempt = choose_amax_methods(model, batches, 2, METHODS, importance_fn=importance_fn,
                                 grid=10, unweighted=['0'])[0]
    assert exempt.errors == plain.errors and exempt.method == plain.method
    with pytest.raises(ValueError, match='grid must be >= 0'):
        choose_amax_methods(model, batches, 1, grid=-1)


def test_sequential_search_feeds_each_layer_the_quantized_models_input():
    """Against a brute force: the second conv's candidates run on the input the first conv
    gives with its chosen input amax and its weights quantized, and are scored against the
    float conv on the float model's input; the first layer's choice is the plain one."""
    model, weights = two_quantized_convs()
    batches = [torch.randn(4, 3, 12, 12) * (1 + 30 * (torch.rand(4, 3, 12, 12) > 0.995))
               for _ in range(2)]
    CalibrationManager(model, progress=False).calibrate(batches, 2, 'max')
    plain = choose_amax_methods(model, batches, 2, METHODS, grid=8)
    first_amax = model[0].input_quantizer.amax.clone()
    choices = {c.layer: c for c in choose_amax_methods(model, batches, 2, METHODS, grid=8,
                                                       sequential=True)}
    assert choices['0'].errors == {c.layer: c for c in plain}['0'].errors
    assert torch.equal(model[0].input_quantizer.amax, first_amax)
    (w0, b0), (w2, b2) = weights
    w0_q = fake_quant(w0, model[0].weight_quantizer.amax, axis=0)
    w2_q = fake_quant(w2, model[2].weight_quantizer.amax, axis=0)
    calibrator = model[2].input_quantizer._calibrator
    largest = float(calibrator.compute_amax('max'))
    amaxes = {m: float(calibrator.compute_amax(m)) for m in METHODS}
    amaxes.update({f'max x{k / 8:.2f}': largest * k / 8 for k in range(1, 9)})
    expected = {}
    for name, amax in amaxes.items():
        squared = count = 0.0
        for x in batches:
            float_input = F.relu(F.conv2d(x, w0, b0, padding=1))
            quant_input = F.relu(F.conv2d(fake_quant(x, first_amax), w0_q, b0, padding=1))
            want = F.conv2d(float_input, w2, b2, padding=1)
            got = F.conv2d(fake_quant(quant_input, amax), w2_q, b2, padding=1)
            squared += float(((got - want)**2).sum())
            count += want.numel()
        expected[name] = squared / count
    assert choices['2'].errors == pytest.approx(expected, rel=1e-4)
    assert choices['2'].errors != pytest.approx({c.layer: c for c in plain}['2'].errors,
                                                rel=1e-3)
    assert choices['2'].method == min(expected, key=expected.get)
