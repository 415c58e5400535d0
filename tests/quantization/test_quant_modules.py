import pytest
import torch
from mmengine.registry import MODELS
from torch import nn

from quantization import (QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL, Concat, Mul, QuantAdd,
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


@pytest.mark.parametrize('float_layer', [
    nn.Conv2d(3, 4, 3, stride=2, padding=(1, 2), dilation=2, groups=1, padding_mode='reflect'),
    nn.Conv2d(4, 4, 3, padding='same', groups=2, bias=False),
    nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, dilation=1, groups=1),
    nn.Linear(3, 5),
])
def test_from_float_builds_the_same_layer_around_the_same_parameters(float_layer):
    float_layer.eval()
    quant = QuantLinear.from_float if isinstance(float_layer, nn.Linear) else (
        QuantConvTranspose2d.from_float if isinstance(float_layer, nn.ConvTranspose2d)
        else QuantConv2d.from_float)
    quant = quant(float_layer, name='neck.layer')
    assert quant.weight is float_layer.weight and quant.bias is float_layer.bias
    assert not quant.training
    assert quant.input_quantizer.name == 'neck.layer.input_quantizer'
    assert quant.weight_quantizer.name == 'neck.layer.weight_quantizer'
    assert quant.input_quantizer.role == 'input' and quant.weight_quantizer.role == 'weight'
    # nothing is shared by accident: the float layer's bookkeeping stays its own
    assert quant._non_persistent_buffers_set is not float_layer._non_persistent_buffers_set
    assert quant._modules is not float_layer._modules
    quant.input_quantizer.disable()
    quant.weight_quantizer.disable()
    x = torch.randn(2, 3, 9, 9) if not isinstance(float_layer, nn.Linear) else torch.randn(2, 3)
    if isinstance(float_layer, nn.Conv2d) and float_layer.in_channels == 4:
        x = torch.randn(2, 4, 9, 9)
    assert torch.equal(quant(x), float_layer(x))
    assert set(quant.state_dict()) == set(float_layer.state_dict()) | {
        'input_quantizer.amax', 'input_quantizer.enabled', 'weight_quantizer.amax',
        'weight_quantizer.enabled'}


def test_elementwise_from_float_keeps_arguments_and_mode():
    concat = Concat(dim=2).eval()
    quant = QuantConcat.from_float(concat, name='fuse')
    assert quant.dim == 2 and not quant.training
    assert quant.input_quantizer.name == 'fuse.input_quantizer'
    assert quant.input_quantizer.role == 'shared input'
    assert QuantMul.from_float(Mul(), name='gate').other_quantizer.name == 'gate.other_quantizer'


def test_a_layer_with_forward_hooks_is_refused_by_name():
    conv = nn.Conv2d(3, 4, 3)
    conv.register_forward_hook(lambda module, args, out: out)
    with pytest.raises(ValueError, match='backbone.conv: has forward hooks'):
        QuantConv2d.from_float(conv, name='backbone.conv')


def test_weight_axis_must_exist():
    with pytest.raises(ValueError, match='weight axis 5 does not exist'):
        QuantLinear(3, 3, quant_desc_weight=QuantDescriptor(axis=5))
