"""SceneSegNetwork against the upstream checkpoint layout, batches, train/eval behaviour, loss."""
import os.path as osp

import pytest
import torch
from torch.nn import functional as F

from projects.SceneSeg import SceneSegModel, SceneSegNetwork
from projects.SceneSeg.model import class_weights, weighted_cross_entropy
from quantization import load_state_dict_strict

# Key, shape and dtype of every tensor of Autoware's upstream SceneSeg checkpoint (412 entries),
# vendored so the test runs on every checkout.
TSV = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'sceneseg_state_dict.tsv')


def upstream_keys():
    rows = [line.rstrip('\n').split('\t') for line in open(TSV)][1:]
    return {key: shape for key, shape, _ in rows}


def test_module_tree_matches_the_upstream_checkpoint():
    expected = upstream_keys()
    state_dict = SceneSegNetwork().state_dict()
    assert len(expected) == 412
    assert {k: str(tuple(v.shape)) for k, v in state_dict.items()} == expected
    assert sum(p.numel() for p in SceneSegNetwork().parameters()) == 48_362_503


def test_upstream_state_dict_loads_strictly_into_the_mmengine_model():
    torch.manual_seed(0)
    network = SceneSegNetwork(width_mult=0.5, decoder_scale=8, context_grid=(2, 4)).eval()
    model = SceneSegModel(width_mult=0.5, decoder_scale=8, context_grid=(2, 4)).eval()
    load_state_dict_strict(model, network.state_dict(), 'upstream.pth')
    image = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(model(image), network(image))
    broken = dict(network.state_dict())
    broken.pop('SceneNeck.decode_layer_0.weight')
    broken['extra.weight'] = torch.zeros(1)
    with pytest.raises(
            KeyError,
            match=r'missing keys \[SceneNeck.decode_layer_0.weight\].*'
            r'unexpected keys \[extra.weight\]'):
        load_state_dict_strict(model, broken, 'upstream.pth')


def test_batch_outputs_equal_single_image_outputs():
    torch.manual_seed(0)
    network = SceneSegNetwork(width_mult=0.5, decoder_scale=8, context_grid=(2, 4)).eval()
    images = torch.randn(3, 3, 64, 128)
    with torch.no_grad():
        batched = network(images)
        single = torch.cat([network(image[None]) for image in images])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_stochastic_depth_and_dropout_only_in_train_mode():
    torch.manual_seed(0)
    network = SceneSegNetwork(width_mult=0.5, decoder_scale=8, context_grid=(2, 4))
    image = torch.randn(2, 3, 64, 128)
    network.eval()
    with torch.no_grad():
        assert torch.equal(network(image), network(image))
    network.train()
    with torch.no_grad():
        assert not torch.equal(network(image), network(image))
    drop = [m.p for m in network.modules() if type(m).__name__ == 'StochasticDepth']
    assert len(drop) == 16 and drop[0] == 0.0 and drop[-1] == pytest.approx(0.2 * 15 / 16)


def test_wrong_input_size_is_named():
    network = SceneSegNetwork(width_mult=0.5, decoder_scale=8).eval()
    with pytest.raises(ValueError, match=r'expects a \(10, 20\) grid .*320 x 640.*got \(2, 4\)'):
        network(torch.randn(1, 3, 64, 128))


def test_loss_uses_per_image_class_weights():
    mask = torch.zeros(4, 8, dtype=torch.long)
    mask[0, :3] = 1
    mask[1:, :] = 2
    weights = class_weights(mask)
    expected = torch.tensor([32 / (5 + 5120), 32 / (3 + 5120), 32 / (24 + 5120)])
    torch.testing.assert_close(weights, expected)
    logits = torch.randn(2, 3, 4, 8)
    masks = torch.stack([mask, torch.ones_like(mask)])
    by_hand = torch.stack([
        F.cross_entropy(logits[i:i + 1], masks[i:i + 1], weight=class_weights(masks[i]))
        for i in range(2)
    ]).mean()
    torch.testing.assert_close(weighted_cross_entropy(logits, masks), by_hand)
