"""Cross-layer equalization: exact in float, ranges balanced, pairs found only where the
output of the first layer feeds nothing but the second."""
import pytest
import torch
from torch import nn

from quantization import QuantRecipe
from quantization.equalization import equalize, equalize_pair, find_equalization_pairs
from quantization.toggle import set_all_quantizers


def unbalanced_net() -> nn.Sequential:
    """Conv-BN-ReLU-Conv-BN-ReLU-ConvTranspose-ReLU-Conv with channel ranges spread over 1000x."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.ConvTranspose2d(8, 6, 2, stride=2), nn.ReLU(),
        nn.Conv2d(6, 4, 1))
    with torch.no_grad():
        net[0].weight.mul_(torch.logspace(-2, 1, 8).reshape(-1, 1, 1, 1))
        net[3].weight.mul_(torch.logspace(1, -2, 8).reshape(1, -1, 1, 1))
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_equalization_keeps_the_float_model_and_balances_every_pair():
    net = unbalanced_net()
    QuantRecipe().apply(net)
    set_all_quantizers(net, False)
    x = torch.randn(4, 3, 16, 16)
    before = net(x)
    pairs = find_equalization_pairs(net)
    assert pairs == [('0', '3'), ('3', '6'), ('6', '8')]
    assert equalize(net) == 3
    after = net(x)
    assert (after - before).abs().max() <= 1e-5 * before.abs().max()
    # A converged chain: each pair's ranges match channel by channel, so one more pass is a
    # no-op (scales 1), and the 1000x spread of the first layer is gone.
    for first, second in pairs:
        scales = equalize_pair(net.get_submodule(first), net.get_submodule(second))
        assert torch.allclose(scales, torch.ones_like(scales), atol=1e-3), (first, second)
    ranges = net[0].weight.abs().amax(dim=(1, 2, 3))
    assert ranges.max() / ranges.min() < 30


def test_one_pair_by_hand():
    """r1 = (4, 1), r2 = (1, 4): s = sqrt(r1 / r2) = (2, 0.5), both ranges become (2, 2)."""
    first, second = nn.Linear(2, 2), nn.Linear(2, 1, bias=False)
    recipe_model = nn.Sequential(first, nn.ReLU(), second)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[4.0, -1.0], [0.5, 1.0]]))
        first.bias.copy_(torch.tensor([2.0, 3.0]))
        second.weight.copy_(torch.tensor([[1.0, -4.0]]))
    QuantRecipe().apply(recipe_model)
    assert equalize(recipe_model, iterations=1) == 1
    layer1, layer2 = recipe_model[0], recipe_model[2]
    torch.testing.assert_close(layer1.weight, torch.tensor([[2.0, -0.5], [1.0, 2.0]]))
    torch.testing.assert_close(layer1.bias, torch.tensor([1.0, 6.0]))
    torch.testing.assert_close(layer2.weight, torch.tensor([[2.0, -2.0]]))


def test_layers_that_do_not_qualify_are_left_alone():
    torch.manual_seed(0)
    silu = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SiLU(), nn.Conv2d(4, 4, 1))  # not homogeneous
    grouped = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1, groups=2))
    for net in (silu, grouped):
        QuantRecipe().apply(net)
        assert find_equalization_pairs(net) == []
    with pytest.raises(ValueError, match='cannot equalize 0 -> 2'):
        equalize(grouped, pairs=[('0', '2')])
