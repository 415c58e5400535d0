import numpy as np
import pytest
import torch

from quantization.descriptor import QuantDescriptor
from quantization.tensor_quant import fake_quant, scale_from_amax


def fq_by_hand(x: np.ndarray, amax, qmin=-127, qmax=127) -> np.ndarray:
    """clamp(round_half_even(x / scale)) * scale with scale = amax / 127, in numpy."""
    scale = np.float32(amax) / np.float32(qmax)
    return (np.clip(np.round(x / scale), qmin, qmax) * scale).astype(np.float32)


def test_per_tensor_matches_hand_formula():
    x = np.array([-2.0, -1.0, -0.013, 0.0, 0.004, 0.5, 0.99, 1.0, 3.0], np.float32)
    amax = torch.tensor(1.0)
    out = fake_quant(
        torch.from_numpy(x), scale_from_amax(amax, 127), torch.zeros((), dtype=torch.int32), None,
        -127, 127)
    np.testing.assert_allclose(out.numpy(), fq_by_hand(x, 1.0), rtol=0, atol=1e-7)
    # hand-worked points: 0.5 / (1/127) = 63.5 -> 64 (half to even), 3.0 clips to 127 -> 1.0
    assert out[5].item() == pytest.approx(64 / 127)
    assert out[8].item() == pytest.approx(1.0)
    assert out[0].item() == pytest.approx(-1.0)


@pytest.mark.parametrize('shape,axis', [((6, 4, 3, 3), 0), ((4, 6, 2, 2), 1), ((5, 7), 0)])
def test_per_channel_matches_hand_formula(shape, axis):
    """Conv2d weights along axis 0, ConvTranspose2d (C_in, C_out, k, k) along 1, Linear rows."""
    x = torch.randn(shape) * 2
    amax = torch.rand(shape[axis]) + 0.1
    out = fake_quant(x, scale_from_amax(amax, 127), torch.zeros(shape[axis], dtype=torch.int32),
                     axis, -127, 127)
    xs = np.moveaxis(x.numpy(), axis, 0)
    expected = np.stack([fq_by_hand(xs[c], amax[c].item()) for c in range(shape[axis])])
    np.testing.assert_allclose(out.numpy(), np.moveaxis(expected, 0, axis), rtol=0, atol=1e-6)


def test_dead_channel_never_gives_zero_scale():
    amax = torch.tensor([0.0, 1.0])
    scale = scale_from_amax(amax, 127)
    assert (scale > 0).all()
    x = torch.tensor([[0.0, 0.0], [0.3, -0.7]])
    out = fake_quant(x, scale, torch.zeros(2, dtype=torch.int32), 0, -127, 127)
    assert torch.isfinite(out).all()
    assert out[0].abs().sum() == 0


def test_straight_through_gradient_is_one_inside_zero_outside():
    x = torch.tensor([-3.0, -0.5, 0.2, 0.9, 2.0], requires_grad=True)
    out = fake_quant(x, scale_from_amax(torch.tensor(1.0), 127), torch.zeros((), dtype=torch.int32),
                     None, -127, 127)
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_half_input_keeps_dtype():
    x = torch.randn(4, 4).half()
    out = fake_quant(x, scale_from_amax(torch.tensor(2.0), 127), torch.zeros((), dtype=torch.int32),
                     None, -127, 127)
    assert out.dtype == torch.float16


def test_descriptor_ranges_and_validation():
    assert (QuantDescriptor().quant_min, QuantDescriptor().quant_max) == (-127, 127)
    assert QuantDescriptor(narrow_range=False).quant_min == -128
    assert (QuantDescriptor(unsigned=True).quant_min,
            QuantDescriptor(unsigned=True).quant_max) == (0, 255)
    with pytest.raises(ValueError, match='calib_method'):
        QuantDescriptor(calib_method='kl')
    with pytest.raises(ValueError, match='per tensor only'):
        QuantDescriptor(axis=0, calib_method='histogram')
    with pytest.raises(KeyError, match='unknown keys'):
        QuantDescriptor.from_dict({'num_bits': 8, 'axes': 0})


@pytest.mark.parametrize('axis', [None, 1])
def test_learned_amax_gradients_equal_torchs_learnable_fake_quant(axis):
    """A second implementation: torch's LSQ kernels, with scale = amax / 127 (so d/d amax is
    d/d scale / 127) and the same gradient factor."""
    from quantization.tensor_quant import fake_quant_learned_amax
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5) * 2
    amax = torch.tensor([3.0]) if axis is None else torch.tensor([1.0, 3.0, 5.0])
    upstream = torch.randn_like(x)
    ours_x, ours_amax = x.clone().requires_grad_(), amax.clone().requires_grad_()
    ours = fake_quant_learned_amax(ours_x, ours_amax, axis, -127, 127)
    (ours * upstream).sum().backward()
    ref_x, ref_scale = x.clone().requires_grad_(), (amax / 127).requires_grad_()
    factor = 1 / (x.numel() * 127)**0.5
    if axis is None:
        ref = torch._fake_quantize_learnable_per_tensor_affine(ref_x, ref_scale, torch.zeros(1),
                                                               -127, 127, factor)
    else:
        ref = torch._fake_quantize_learnable_per_channel_affine(ref_x, ref_scale, torch.zeros(3),
                                                                axis, -127, 127, factor)
    (ref * upstream).sum().backward()
    assert torch.equal(ours, ref)
    assert torch.equal(ours_x.grad, ref_x.grad)
    torch.testing.assert_close(ours_amax.grad, ref_scale.grad / 127, rtol=1e-5, atol=1e-9)
    assert (ours_amax.grad != 0).all()


def test_learned_amax_converges_near_the_brute_force_mse_range():
    """LSQ on the reconstruction error of a heavy-tailed tensor, from a far too wide range, ends
    within 2 % of the best MSE a grid search over amax finds (4-bit, so ranges matter)."""
    from quantization.tensor_quant import fake_quant_learned_amax
    torch.manual_seed(0)
    x = torch.distributions.StudentT(3.0).sample((20000, ))
    candidates = torch.linspace(0.5, 20, 800)
    errors = torch.stack([((quantize_dequantize_ref(x, a, 7) - x)**2).mean() for a in candidates])
    best = errors.min().item()
    amax = torch.tensor(x.abs().max().item(), requires_grad=True)
    optimizer = torch.optim.Adam([amax], lr=0.2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 400)
    start = ((fake_quant_learned_amax(x, amax, None, -7, 7) - x)**2).mean().item()
    for _ in range(400):
        optimizer.zero_grad()
        ((fake_quant_learned_amax(x, amax, None, -7, 7) - x)**2).mean().backward()
        optimizer.step()
        schedule.step()
    learned = ((quantize_dequantize_ref(x, amax.detach(), 7) - x)**2).mean().item()
    assert start > 3 * best
    assert learned <= 1.02 * best, (learned, best, amax.item())


def quantize_dequantize_ref(x, amax, qmax):
    scale = amax / qmax
    return torch.clamp(torch.round(x / scale), -qmax, qmax) * scale
