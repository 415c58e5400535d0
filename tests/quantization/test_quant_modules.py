import pytest
import torch
from mmengine.registry import MODELS
from torch import nn

from quantization import (QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL, Mul, QuantAdd,
                          QuantConcat, QuantMul, QuantConv2d, QuantConvTranspose2d, QuantDescriptor,
                          QuantLinear)
from quantization.tensor_quant import fake_quant, scale_from_amax

MAX = QuantDescriptor(calib_method='max')


def fq(x, amax, axis=None):
    return fake_quant(x, scale_from_amax(amax, 127), torch.zeros(amax.shape, dtype=torch.int32),
                      axis, -127, 127)


def calibrate(module, *inputs):
    quantizers = [m for m in module.modules() if m.__class__.__name__ == 'TensorQuantizer']
    for q in quantizers:
        q.disable_quant()
        q.enable_calib()
    module(*inputs)
    for q in quantizers:
        q.disable_calib()
        q.enable_quant()
        q.load_calib_amax('max')


@pytest.mark.parametrize(
    'type_name', ['QuantConv2d', 'QuantConvTranspose2d', 'QuantLinear', 'QuantAdd', 'QuantConcat'])
def test_built_by_type_name_from_registry(type_name):
    args = {
        'QuantLinear': dict(in_features=4, out_features=3),
        'QuantAdd': {},
        'QuantConcat': dict(dim=1)
    }.get(type_name, dict(in_channels=4, out_channels=3, kernel_size=3))
    module = MODELS.build(dict(type=type_name, **args))
    assert type(module).__name__ == type_name


def test_unknown_type_name_is_refused_by_name():
    with pytest.raises(KeyError, match='QuantConv3d'):
        MODELS.build(dict(type='QuantConv3d', in_channels=1, out_channels=1, kernel_size=1))


def test_quant_conv2d_equals_manual_computation():
    conv = QuantConv2d(3, 5, 3, padding=1, quant_desc_input=MAX)
    x = torch.randn(2, 3, 8, 8)
    calibrate(conv, x)
    w_amax = conv.weight.detach().abs().amax(dim=(1, 2, 3))
    assert torch.allclose(conv.weight_quantizer.amax, w_amax)
    expected = nn.functional.conv2d(
        fq(x,
           x.abs().max()), fq(conv.weight, w_amax, 0), conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)


@pytest.mark.parametrize('weight_desc,axis',
                         [(None, None), (QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL, 0)])
def test_quant_conv_transpose_weight_axes(weight_desc, axis):
    deconv = QuantConvTranspose2d(
        4, 6, 2, stride=2, quant_desc_input=MAX, quant_desc_weight=weight_desc)
    x = torch.randn(2, 4, 5, 5)
    calibrate(deconv, x)
    w = deconv.weight.detach()  # (C_in, C_out, kH, kW)
    w_amax = w.abs().max() if axis is None else w.abs().amax(dim=(1, 2, 3))
    assert deconv.weight_quantizer.amax.shape == w_amax.shape
    expected = nn.functional.conv_transpose2d(
        fq(x,
           x.abs().max()), fq(w, w_amax, axis), deconv.bias, stride=2)
    assert torch.allclose(deconv(x), expected, atol=1e-6)


def test_quant_linear_per_row():
    linear = QuantLinear(6, 4, quant_desc_input=MAX)
    x = torch.randn(10, 6)
    calibrate(linear, x)
    assert linear.weight_quantizer.amax.shape == (4, )
    expected = nn.functional.linear(
        fq(x,
           x.abs().max()), fq(linear.weight,
                              linear.weight.detach().abs().amax(1), 0), linear.bias)
    assert torch.allclose(linear(x), expected, atol=1e-6)


def test_quant_add_and_concat_share_one_scale():
    a, b = torch.randn(2, 3, 4, 4), 5 * torch.randn(2, 3, 4, 4)
    add = QuantAdd(quant_desc_input=MAX)
    calibrate(add, a, b)
    shared = torch.maximum(a.abs().max(), b.abs().max())
    assert add.input_quantizer.amax.item() == pytest.approx(shared.item())
    assert torch.allclose(add(a, b), fq(a, shared) + fq(b, shared))
    concat = QuantConcat(dim=1, quant_desc_input=MAX)
    calibrate(concat, [a, b])
    assert torch.allclose(concat([a, b]), torch.cat([fq(a, shared), fq(b, shared)], 1))
    assert len([m for m in concat.modules() if m.__class__.__name__ == 'TensorQuantizer']) == 1


def test_quant_mul_quantizes_each_input_with_its_own_scale():
    gate, x = torch.rand(2, 1, 4, 4), 5 * torch.randn(2, 3, 4, 4)
    mul = QuantMul(quant_desc_input=MAX)
    calibrate(mul, gate, x)
    assert mul.input_quantizer.amax.item() == pytest.approx(gate.max().item())
    assert mul.other_quantizer.amax.item() == pytest.approx(x.abs().max().item())
    expected = fq(gate, gate.max()) * fq(x, x.abs().max())
    assert torch.allclose(mul(gate, x), expected)
    from quantization import quantize_model
    holder = nn.Module()
    holder.gate = Mul()
    quantize_model(holder)
    assert type(holder.gate) is QuantMul


def test_from_float_shares_parameters_and_keeps_weights():
    conv = nn.Conv2d(3, 4, 3)
    quant = QuantConv2d.from_float(conv)
    assert quant.weight is conv.weight and quant.bias is conv.bias
    quant.input_quantizer.disable()
    quant.weight_quantizer.disable()
    x = torch.randn(1, 3, 6, 6)
    assert torch.equal(quant(x), conv(x))


def test_weight_axis_must_exist():
    with pytest.raises(ValueError, match='weight axis 5 does not exist'):
        QuantLinear(3, 3, quant_desc_weight=QuantDescriptor(axis=5))
