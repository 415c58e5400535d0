import pytest
import torch
from torch import nn

from quantization import (QuantConv2d, find_bn_pairs, fold_bn, fuse_bn, fuse_relu, quantize_model)


def randomize_bn(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        if bn.affine:
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    return bn.eval()


@pytest.mark.parametrize('layer,bn,x', [
    (nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6), torch.randn(2, 4, 9, 9)),
    (nn.Conv2d(4, 6, 3, groups=2), nn.BatchNorm2d(6), torch.randn(2, 4, 9, 9)),
    (nn.ConvTranspose2d(4, 6, 2, 2, bias=False), nn.BatchNorm2d(6), torch.randn(2, 4, 5, 5)),
    (nn.ConvTranspose2d(4, 6, 3, 2, groups=2), nn.BatchNorm2d(6), torch.randn(2, 4, 5, 5)),
    (nn.Linear(5, 7), nn.BatchNorm1d(7), torch.randn(8, 5)),
    (nn.Linear(5, 7, bias=False), nn.BatchNorm1d(7, affine=False), torch.randn(8, 5)),
])
def test_fold_is_exact(layer, bn, x):
    randomize_bn(bn)
    layer.eval()
    expected = bn(layer(x))
    weight = layer.weight
    fold_bn(layer, bn)
    assert layer.weight is weight
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_layer_without_bias_takes_over_bn_bias_parameter():
    conv, bn = nn.Conv2d(3, 4, 1, bias=False), randomize_bn(nn.BatchNorm2d(4))
    fold_bn(conv, bn)
    assert conv.bias is bn.bias


class PFNLayerLike(nn.Module):
    """mmdet3d's PFNLayer registers its BN before the Linear and permutes in forward."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(8)
        self.linear = nn.Linear(10, 8, bias=False)

    def forward(self, x):  # (N, P, 10)
        x = self.linear(x)
        return torch.relu(self.norm(x.permute(0, 2, 1)).permute(0, 2, 1))


def test_fuse_bn_finds_sequential_pairs_and_takes_explicit_ones():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.ConvTranspose2d(4, 4, 2, 2),
        nn.BatchNorm2d(4), nn.ReLU())
    for m in (model[1], model[4]):
        randomize_bn(m)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    assert find_bn_pairs(model) == [('0', '1'), ('3', '4')]
    assert fuse_bn(model) == 2
    assert isinstance(model[1], nn.Identity) and isinstance(model[4], nn.Identity)
    assert torch.allclose(model(x), expected, atol=1e-5)

    pfn = PFNLayerLike()
    randomize_bn(pfn.norm)
    pfn.eval()
    points = torch.randn(5, 32, 10)
    expected = pfn(points)
    assert find_bn_pairs(pfn) == []  # registration order is not data flow
    assert fuse_bn(pfn, extra_pairs=[('linear', 'norm')]) == 1
    assert torch.allclose(pfn(points), expected, atol=1e-5)


def test_fuse_bn_rejects_mismatched_pairs_and_calibrated_layers():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(5))
    with pytest.raises(ValueError, match='cannot fold 1 .5 features. into 0 .4 output'):
        fuse_bn(model, pairs=[('0', '1')])
    with pytest.raises(KeyError, match="no module named 'missing'"):
        fuse_bn(model, pairs=[('0', 'missing')])
    quant = nn.Sequential(QuantConv2d(3, 4, 1), nn.BatchNorm2d(4))
    quant[0].weight_quantizer.set_amax(torch.ones(4))
    with pytest.raises(ValueError, match='fold BatchNorm before calibration'):
        fuse_bn(quant)


def test_fuse_relu_moves_relu_into_quant_layer():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4),
        nn.ReLU())
    randomize_bn(model[1])
    randomize_bn(model[4])
    model.eval()
    x = torch.randn(1, 3, 8, 8)
    expected = model(x)
    quantize_model(model)
    assert fuse_relu(model) == 0  # BN not folded yet: ReLU must stay after BN
    fuse_bn(model)
    assert fuse_relu(model) == 2
    assert isinstance(model[0].fused_act, nn.ReLU) and isinstance(model[2], nn.Identity)
    for module in model.modules():
        if module.__class__.__name__ == 'TensorQuantizer':
            module.disable()
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_mmcv_conv_module_pairs():
    from mmcv.cnn import ConvModule
    model = nn.Sequential(ConvModule(3, 4, 3, norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU')))
    randomize_bn(model[0].bn)
    model.eval()
    x = torch.randn(1, 3, 8, 8)
    expected = model(x)
    quantize_model(model)
    assert fuse_bn(model) == 1 and fuse_relu(model) == 1
    for module in model.modules():
        if module.__class__.__name__ == 'TensorQuantizer':
            module.disable()
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_mmcv_deconv_wrapper_is_quantized_and_folded():
    from mmcv.cnn import build_upsample_layer
    from quantization import QuantConvTranspose2d
    deconv = build_upsample_layer(dict(type='deconv', bias=False), 8, 4, 2, stride=2)
    assert type(deconv) is not nn.ConvTranspose2d  # mmcv's subclass
    model = nn.Sequential(deconv, randomize_bn(nn.BatchNorm2d(4)), nn.ReLU()).eval()
    assert quantize_model(model) == 1 and isinstance(model[0], QuantConvTranspose2d)
    assert fuse_bn(model) == 1 and fuse_relu(model) == 1
