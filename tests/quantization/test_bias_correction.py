"""Empirical bias correction against a brute-force computation of the mean output shift."""
import torch
from torch import nn

from quantization import CalibrationManager, QuantRecipe
from quantization.bias_correction import correct_bias, measure_bias_shift
from quantization.tensor_quant import quantize_dequantize


def coarse_linear(seed=0):
    """Linear 16 -> 4 with 3-bit per-tensor weights and 8-bit inputs of mean 2, so the weight
    rounding error moves the output mean."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 4))
    QuantRecipe(quant_desc_weight={'QuantLinear': dict(num_bits=3)},
                quant_desc_input=dict(calib_method='max')).apply(model)
    batches = [torch.randn(32, 16) + 2.0 for _ in range(4)]
    CalibrationManager(model, progress=False).calibrate(batches, 4, 'max')
    return model, batches


def test_shift_equals_the_brute_force_mean_and_correction_removes_it():
    model, batches = coarse_linear()
    layer = model[0]
    w_amax, x_amax = float(layer.weight_quantizer.amax), float(layer.input_quantizer.amax)
    w_q = quantize_dequantize(layer.weight.detach(), torch.tensor(w_amax / 3), -3, 3)
    x = torch.cat(batches)
    x_q = quantize_dequantize(x, torch.tensor(x_amax / 127), -127, 127)
    by_hand = (x_q @ w_q.T - x @ layer.weight.detach().T).mean(0)
    assert by_hand.abs().max() > 0.05  # a shift worth correcting
    shift = measure_bias_shift(model, batches, 4)['0']
    torch.testing.assert_close(shift, by_hand, rtol=1e-4, atol=1e-5)

    bias_before = layer.bias.detach().clone()
    corrected = correct_bias(model, batches, 4)
    assert corrected['0'] == float(by_hand.abs().max())
    torch.testing.assert_close(layer.bias.detach(), bias_before - by_hand, rtol=1e-4, atol=1e-5)
    float_mean = (x @ layer.weight.detach().T + bias_before).mean(0)
    torch.testing.assert_close(model(x).mean(0), float_mean, rtol=0, atol=1e-5)

    # Frames it did not see, from the same distribution: the output is closer to float.
    held_out = torch.randn(256, 16) + 2.0
    float_out = held_out @ layer.weight.detach().T + bias_before
    corrected_error = ((model(held_out) - float_out)**2).mean()
    with torch.no_grad():
        layer.bias.copy_(bias_before)
    assert corrected_error < 0.5 * ((model(held_out) - float_out)**2).mean()


def test_conv_without_bias_gets_one_and_the_shift_is_taken_before_the_relu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Conv2d(4, 2, 1))
    QuantRecipe(quant_desc_weight={'QuantConv2d': dict(num_bits=3, axis=0)}).apply(model)
    assert not isinstance(model[0].fused_act, nn.Identity)  # the ReLU is fused
    batches = [torch.randn(8, 3, 8, 8) + 1.0 for _ in range(2)]
    CalibrationManager(model, progress=False).calibrate(batches, 2, 'max')
    layer = model[0]
    with torch.no_grad():
        x = torch.cat(batches)
        pre_float = nn.functional.conv2d(x, layer.weight)
        layer.fused_act = nn.Identity()
        pre_quant = layer(x)
        layer.fused_act = nn.ReLU()
    by_hand = (pre_quant - pre_float).mean(dim=(0, 2, 3))
    correct_bias(model, batches, 2)
    assert layer.bias is not None and isinstance(layer.bias, nn.Parameter)
    torch.testing.assert_close(layer.bias.detach(), -by_hand, rtol=1e-4, atol=1e-5)
    assert set(measure_bias_shift(model, batches, 2)) == {'0', '2'}


def test_a_bias_the_correction_added_is_saved_and_loads_into_a_fresh_float_model(tmp_path):
    from quantization import load_quantized_checkpoint, save_quantized_checkpoint

    def float_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Conv2d(4, 2, 1))

    model, recipe = float_model(), QuantRecipe(equalize=True)
    recipe.apply(model)
    batches = [torch.randn(8, 3, 8, 8) + 1.0 for _ in range(2)]
    CalibrationManager(model, progress=False).calibrate(batches, 2, 'max')
    correct_bias(model, batches, 2)
    path = str(tmp_path / 'corrected.pth')
    save_quantized_checkpoint(model, path, recipe)
    fresh = float_model()
    assert fresh[0].bias is None
    load_quantized_checkpoint(fresh, path)
    torch.testing.assert_close(fresh[0].bias, model[0].bias)
    assert torch.equal(fresh(batches[0]), model(batches[0]))
