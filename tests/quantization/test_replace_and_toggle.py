import pytest
from torch import nn

from quantization import (QuantConv2d, QuantConvTranspose2d, QuantLinear, QuantAdd,
                          disable_quantizers, enable_quantizers, named_quantizers, quantize_model)
from projects.Demo import DemoNet


def test_replaces_in_place_keeping_names_and_parameters():
    model = DemoNet()
    params_before = dict(model.named_parameters())
    count = quantize_model(model)
    assert count == 10  # 5 Conv2d, 1 ConvTranspose2d, 2 Linear, 1 Add, 1 Concat
    assert isinstance(model.stem[0], QuantConv2d)
    assert isinstance(model.up[0], QuantConvTranspose2d)
    assert isinstance(model.head[0], QuantLinear)
    assert isinstance(model.add, QuantAdd)
    for name, param in model.named_parameters():
        assert params_before[name] is param  # same objects, same names
    assert set(params_before) == set(dict(model.named_parameters()))


def test_include_and_exclude_patterns():
    model = DemoNet()
    assert quantize_model(model, include=['block', 'head.*'], exclude=['head.3']) == 3
    assert isinstance(model.block[0][0], QuantConv2d) and isinstance(model.block[1], QuantConv2d)
    assert isinstance(model.head[0], QuantLinear)
    assert type(model.head[3]) is nn.Linear and type(model.stem[0]) is nn.Conv2d


def test_unknown_weight_descriptor_type_is_named():
    with pytest.raises(KeyError, match='QuantConv3d'):
        quantize_model(DemoNet(), quant_desc_weight={'QuantConv3d': {}})


def test_disable_by_pattern_and_unknown_pattern_error():
    model = DemoNet()
    quantize_model(model)
    assert disable_quantizers(model, ['stem.*', 'head.0']) == 4
    names = {n for n, q in named_quantizers(model) if not q.is_enabled}
    assert names == {
        'stem.0.input_quantizer', 'stem.0.weight_quantizer', 'head.0.input_quantizer',
        'head.0.weight_quantizer'
    }
    assert enable_quantizers(model, 'stem') == 2
    with pytest.raises(KeyError, match=r"\['backbone.conv9'\] match no quantizer"):
        disable_quantizers(model, ['head.0', 'backbone.conv9'])
