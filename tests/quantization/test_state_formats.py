"""Quantized state across versions and toolkits: a checkpoint of the first format (kept in
tests/data) still loads, new ones carry their format, pytorch-quantization state_dicts load, and
the summary lists every quantizer."""
import os.path as osp

import pytest
import torch
from torch import nn

from projects.Demo import DemoNet
from quantization import (CHECKPOINT_FORMAT, Add, QuantRecipe, load_quantized_checkpoint,
                          load_state_dict_strict, quant_summary, quantize_model,
                          save_quantized_checkpoint)
from quantization.markdown import markdown_table

DATA = osp.join(osp.dirname(osp.dirname(__file__)), 'data')


def test_format_1_checkpoint_still_loads_and_gives_its_logits():
    path = osp.join(DATA, 'demonet_quantized_format1.pth')
    raw = torch.load(path, weights_only=True)
    assert 'quantization_format' not in raw['meta']  # written before formats had a key
    model = DemoNet(width=8, num_classes=6).eval()
    load_quantized_checkpoint(model, path)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(raw['meta']['input_seed']))
    with torch.no_grad():  # logits written on another CPU: its kernels sum in another order
        torch.testing.assert_close(model(x), raw['meta']['expected_logits'], rtol=0, atol=1e-6)


def test_new_checkpoints_carry_their_format_and_a_newer_one_is_refused(tmp_path):
    model = DemoNet(width=8, num_classes=6).eval()
    recipe = QuantRecipe()
    recipe.apply(model)
    path = str(tmp_path / 'q.pth')
    save_quantized_checkpoint(model, path, recipe)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint['meta']['quantization_format'] == CHECKPOINT_FORMAT == 2
    assert model.state_dict()._metadata['stem.0.input_quantizer']['version'] == 2
    checkpoint['meta']['quantization_format'] = 3
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match='quantization format 3, newer than this toolkit'):
        load_quantized_checkpoint(DemoNet(width=8, num_classes=6), path)


class ConvLinear(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def test_pytorch_quantization_state_dict_loads_per_tensor_and_per_channel():
    torch.manual_seed(0)
    reference = ConvLinear()
    # pytorch-quantization's layout, written out: `_input_quantizer._amax` per tensor (a 0-dim
    # tensor), `_weight_quantizer._amax` per output channel with kept dimensions
    conv_amax = torch.tensor([0.3, 0.2, 0.25, 0.1]).reshape(4, 1, 1, 1)
    fc_amax = torch.tensor([0.4, 0.5]).reshape(2, 1)
    theirs = {
        'conv.weight': reference.conv.weight.detach(), 'conv.bias': reference.conv.bias.detach(),
        'conv._input_quantizer._amax': torch.tensor(2.5),
        'conv._weight_quantizer._amax': conv_amax,
        'fc.weight': reference.fc.weight.detach(), 'fc.bias': reference.fc.bias.detach(),
        'fc._input_quantizer._amax': torch.tensor(1.5),
        'fc._weight_quantizer._amax': fc_amax,
    }
    model = ConvLinear()
    quantize_model(model)
    load_state_dict_strict(model, theirs, 'a pytorch-quantization checkpoint')
    assert model.conv.input_quantizer.amax.item() == 2.5
    assert torch.equal(model.conv.weight_quantizer.amax, conv_amax.flatten())
    assert torch.equal(model.fc.weight_quantizer.amax, fc_amax.flatten())
    assert model.fc.input_quantizer.is_enabled and model.conv.weight_quantizer.is_enabled
    # the same amax set by hand gives the same output
    expected = ConvLinear()
    quantize_model(expected)
    expected.load_state_dict(reference.state_dict(), strict=False)
    expected.conv.input_quantizer.set_amax(2.5)
    expected.conv.weight_quantizer.set_amax(conv_amax.flatten())
    expected.fc.input_quantizer.set_amax(1.5)
    expected.fc.weight_quantizer.set_amax(fc_amax.flatten())
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(model(x), expected(x))


class Residual(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.add = Add()

    def forward(self, x):
        return self.add(self.conv(x), x)


def test_summary_lists_roles_state_and_amax():
    model = Residual()
    quantize_model(model)
    model.conv.weight_quantizer.set_amax(torch.tensor([0.5, 0.25]))
    model.add.input_quantizer.set_amax(3.0)
    model.conv.input_quantizer.disable()
    text = quant_summary(model)
    assert '| conv.input_quantizer | input | no | tensor | 8 | unset |' in text
    assert '| conv.weight_quantizer | weight | yes | 0 | 8 | 0.25 .. 0.5 (2 channels) |' in text
    assert '| add.input_quantizer | shared input | yes | tensor | 8 | 3 |' in text
    assert text.endswith('3 quantizers, 2 enabled, 0 of them without amax')


def test_markdown_cells_are_escaped():
    table = markdown_table(('name', 'value'), [('a|b', 'line\nbreak')])
    assert table.splitlines()[2] == '| a\\|b | line break |'
