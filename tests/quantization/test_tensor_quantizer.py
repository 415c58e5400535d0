import io

import pytest
import torch

from quantization import QuantDescriptor, TensorQuantizer
from quantization.tensor_quant import fake_quant, scale_from_amax


def calibrated(desc=QuantDescriptor(), data=None, method='max'):
    quantizer = TensorQuantizer(desc, name='layer.input_quantizer')
    quantizer.disable_quant()
    quantizer.enable_calib()
    quantizer(torch.randn(64, 8) if data is None else data)
    quantizer.disable_calib()
    quantizer.enable_quant()
    quantizer.load_calib_amax(method)
    return quantizer


def test_amax_is_a_buffer_from_init_and_scale_follows():
    quantizer = TensorQuantizer()
    assert 'amax' in dict(quantizer.named_buffers())
    assert 'amax' in quantizer.state_dict() and 'scale' not in quantizer.state_dict()
    quantizer.set_amax(2.54)
    assert quantizer.scale.item() == pytest.approx(0.02)
    assert quantizer.zero_point.item() == 0 and quantizer.zero_point.dtype == torch.int32


def test_amax_and_scale_are_updated_in_place_while_their_shape_stays():
    quantizer = TensorQuantizer(QuantDescriptor(axis=0), num_channels=3)
    quantizer.set_amax(torch.ones(3))
    amax, scale = quantizer.amax, quantizer.scale
    quantizer.set_amax(torch.tensor([1.27, 2.54, 3.81]))
    assert quantizer.amax is amax and quantizer.scale is scale
    assert torch.allclose(scale, torch.tensor([0.01, 0.02, 0.03]))
    quantizer.set_amax(torch.ones(4))  # a new shape: a new tensor
    assert quantizer.amax.shape == (4, ) and quantizer.scale.shape == (4, )


def test_enable_flag_is_one_bool_saved_as_the_enabled_key():
    quantizer = TensorQuantizer()
    assert 'enabled' not in dict(quantizer.named_buffers())
    quantizer.disable()
    assert quantizer.state_dict()['enabled'].item() is False
    fresh = TensorQuantizer()
    fresh.load_state_dict(quantizer.state_dict())
    assert not fresh.is_enabled
    with pytest.raises(RuntimeError, match='Missing key.*enabled'):
        fresh.load_state_dict({'amax': torch.empty(0)})
    fresh.load_state_dict({'amax': torch.empty(0)}, strict=False)
    assert not fresh.is_enabled  # a missing key keeps the flag


def test_quantizing_before_calibration_names_the_quantizer():
    quantizer = TensorQuantizer(name='backbone.conv1.input_quantizer')
    with pytest.raises(
            RuntimeError, match='backbone.conv1.input_quantizer: quantizing before calibration'):
        quantizer(torch.randn(3))


def test_calibration_with_no_data_and_with_nan():
    quantizer = TensorQuantizer(name='neck.input_quantizer')
    with pytest.raises(ValueError, match='neck.input_quantizer: calibrator saw no data'):
        quantizer.load_calib_amax('mse')
    quantizer.load_calib_amax('mse', strict=False)  # documented fallback: keep amax unset
    assert not quantizer.has_amax
    quantizer.enable_calib()
    with pytest.raises(
            ValueError, match='neck.input_quantizer: calibration input holds NaN or Inf'):
        quantizer(torch.tensor([1.0, float('inf')]))


def test_forward_equals_fake_quant_with_calibrated_amax():
    data = torch.randn(256, 8)
    quantizer = calibrated(data=data)
    assert quantizer.amax.item() == pytest.approx(data.abs().max().item())
    expected = fake_quant(data, scale_from_amax(quantizer.amax, 127),
                          torch.zeros((), dtype=torch.int32), None, -127, 127)
    assert torch.equal(quantizer(data), expected)
    quantizer.disable()
    assert quantizer(data) is data


def test_state_dict_round_trip_with_torch_save_weights_only():
    quantizer = calibrated(QuantDescriptor(axis=1))
    quantizer.disable()
    buffer = io.BytesIO()
    torch.save(quantizer.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = TensorQuantizer(QuantDescriptor(axis=1))
    assert not fresh.has_amax
    fresh.load_state_dict(state)
    assert torch.equal(fresh.amax, quantizer.amax) and fresh.amax.shape == (8, )
    assert torch.equal(fresh.scale, quantizer.scale)
    assert not fresh.is_enabled  # the enable flag travels in the state_dict
    fresh.enable()
    quantizer.enable()
    x = torch.randn(5, 8)
    assert torch.equal(fresh(x), quantizer(x))


def test_to_moves_buffers():
    quantizer = calibrated().to(torch.float64)
    assert quantizer.amax.dtype == torch.float64  # buffers follow .to(); device moves the same way


def test_fixed_amax_descriptor_needs_no_calibration():
    quantizer = TensorQuantizer(QuantDescriptor(amax=1.27))
    assert quantizer(torch.tensor([0.5])).item() == pytest.approx(0.5)
    assert quantizer.scale.item() == pytest.approx(0.01)


def test_onnx_export_uses_full_int8_low_bound(monkeypatch):
    quantizer = TensorQuantizer(QuantDescriptor(amax=1.27))
    x = torch.tensor([-2.0])
    assert quantizer(x).item() == pytest.approx(-1.27)
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    assert quantizer(x).item() == pytest.approx(-1.28)


def test_histogram_quantizer_methods_differ_on_heavy_tails():
    data = torch.cat([torch.randn(20000), torch.tensor([40.0])])
    amaxes = {
        m: calibrated(QuantDescriptor(calib_method='histogram'), data, m).amax.item()
        for m in ('max', 'percentile', 'mse', 'entropy')
    }
    assert amaxes['max'] >= 40.0
    assert amaxes['percentile'] < 10 and amaxes['entropy'] < 10
    # One outlier of 40 in 20k samples: clipping it costs 36**2 / 20001 = 0.065 of MSE, more than
    # the coarser step of amax ~36 costs ((36 / 127)**2 / 12 = 0.0067), so MSE keeps it.
    assert 30 < amaxes['mse'] < amaxes['max']


def test_per_channel_amax_of_wrong_length_is_named():
    quantizer = TensorQuantizer(QuantDescriptor(axis=0), name='conv.weight_quantizer')
    quantizer.set_amax(torch.ones(3))
    with pytest.raises(ValueError, match='conv.weight_quantizer: 3 per-channel amax values for 4'):
        quantizer(torch.randn(4, 2))


def test_role_is_set_at_construction_and_decides_range_tracking():
    from quantization import QuantAdd, QuantConv2d
    conv, add = QuantConv2d(2, 2, 1), QuantAdd()
    assert (conv.input_quantizer.role, conv.weight_quantizer.role,
            add.input_quantizer.role) == ('input', 'weight', 'shared input')
    for quantizer, expected in ((conv.input_quantizer, 0.05), (conv.weight_quantizer, 1.0),
                                (add.input_quantizer, 0.05)):
        quantizer.track_ranges(0.05)
        assert quantizer.amax_momentum == expected
        quantizer.track_ranges(None)
        assert quantizer.amax_momentum is None
    with pytest.raises(ValueError, match="role must be one of"):
        TensorQuantizer(role='bias')


def test_learned_amax_keeps_its_key_trains_and_exports_like_a_fixed_one(monkeypatch):
    quantizer = calibrated()
    calibrated_amax = quantizer.amax.item()
    with pytest.raises(RuntimeError, match='needs amax set'):
        TensorQuantizer(name='q').learn_amax()
    param = quantizer.learn_amax()
    assert quantizer.learns_amax and list(quantizer.parameters()) == [param]
    assert param.item() == calibrated_amax
    x = torch.randn(256, 8) * 3
    loss = ((quantizer(x) - x)**2).mean()
    loss.backward()
    assert param.grad is not None and param.grad.item() != 0
    with torch.no_grad():
        param -= 0.5  # an optimizer step
    y = quantizer(x)
    assert quantizer.scale.item() == pytest.approx((calibrated_amax - 0.5) / 127)
    expected = fake_quant(x, scale_from_amax(param.detach(), 127),
                          torch.zeros((), dtype=torch.int32), None, -127, 127)
    assert torch.equal(y, expected)
    # The state_dict holds 'amax' as a calibrated quantizer does, and loads into one.
    state = quantizer.state_dict()
    assert sorted(state) == ['amax', 'enabled']
    fixed = TensorQuantizer(name='q')
    fixed.load_state_dict(state)
    assert not fixed.learns_amax and torch.equal(fixed(x), y)
    # Export (Q/DQ constants) uses the learned value.
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    assert torch.equal(quantizer(x), fixed(x))
    # An optimizer that pushes amax below zero leaves it at the floor, never a negative scale.
    with torch.no_grad():
        param.fill_(-1.0)
    quantizer(x)
    assert param.item() > 0 and quantizer.scale.item() > 0
    # fix_amax: a buffer again, same key and value, no parameter left
    with torch.no_grad():
        param.fill_(2.5)
    quantizer.fix_amax()
    assert not quantizer.learns_amax and list(quantizer.parameters()) == []
    assert quantizer.amax.item() == 2.5 and quantizer.scale.item() == pytest.approx(2.5 / 127)
    assert sorted(quantizer.state_dict()) == ['amax', 'enabled']
    quantizer.learn_amax()
    quantizer.reset_amax()
    assert not quantizer.learns_amax and not quantizer.has_amax
