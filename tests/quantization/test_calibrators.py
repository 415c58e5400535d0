import numpy as np
import pytest
import torch

from quantization.calib import (HistogramCalibrator, MaxCalibrator, compute_amax_entropy,
                                compute_amax_mse, compute_amax_percentile)


def test_max_calibrator_per_channel():
    calib = MaxCalibrator(axis=1)
    a = torch.tensor([[1.0, -5.0, 0.0], [-2.0, 1.0, 0.5]])
    b = torch.tensor([[0.5, 4.0, -3.0], [0.0, 0.0, 0.0]])
    calib.collect(a)
    calib.collect(b)
    assert calib.compute_amax().tolist() == [2.0, 5.0, 3.0]
    calib.reset()
    assert calib.compute_amax() is None


def test_histogram_grows_and_equals_single_pass():
    torch.manual_seed(1)
    batches = [torch.randn(1000) * s for s in (0.1, 1.0, 7.0, 0.5)]  # later batches exceed range
    incremental = HistogramCalibrator(num_bins=256)
    for batch in batches:
        incremental.collect(batch)
    at_once = HistogramCalibrator(num_bins=256)
    at_once.collect(torch.cat(batches))
    assert incremental.width_exp == at_once.width_exp
    assert torch.equal(incremental.calib_hist, at_once.calib_hist)
    assert int(incremental.calib_hist.sum()) == 4000
    assert incremental.bin_edges[-1] > torch.cat(batches).abs().max()


def test_percentile_of_uniform_distribution():
    values = torch.rand(200_000) * 4.0  # |x| uniform on [0, 4): the 99th percentile is 3.96
    calib = HistogramCalibrator(num_bins=2048)
    calib.collect(values)
    amax = calib.compute_amax('percentile', percentile=99.0).item()
    assert amax == pytest.approx(3.96, abs=4.0 / 1024)
    exact = np.percentile(values.numpy(), 99.0)
    assert amax >= exact  # the upper edge of the bin where the CDF crosses 99 %


def test_mse_matches_brute_force_on_samples():
    torch.manual_seed(2)
    values = torch.cat([torch.randn(50_000), torch.randn(50) * 20])  # gaussian with outliers
    calib = HistogramCalibrator(num_bins=1024)
    calib.collect(values)
    amax = calib.compute_amax('mse', start_bin=16).item()

    # Brute force: quantize the raw samples for a grid of amax, keep the best.
    grid = torch.linspace(0.5, 80.0, 1600)
    errors = []
    for candidate in grid:
        scale = candidate / 127
        dequant = torch.clamp(torch.round(values / scale), -127, 127) * scale
        errors.append(((dequant - values)**2).mean())
    best = grid[int(torch.argmin(torch.stack(errors)))].item()
    best_error = min(errors).item()
    scale = amax / 127
    error_at_amax = ((torch.clamp(torch.round(values / scale), -127, 127) * scale -
                      values)**2).mean()
    assert error_at_amax.item() <= best_error * 1.03
    assert amax == pytest.approx(best, rel=0.1)


def entropy_reference(hist: np.ndarray, num_quant_bins: int, start: int) -> int:
    """TensorRT's KL calibration written as plain loops; returns the number of kept bins."""
    hist = hist.astype(np.float64).copy()
    hist[0] = hist[1]
    best_kept, best_kl = None, None
    for kept in range(start, len(hist) + 1):
        p = hist[:kept].copy()
        p[kept - 1] += hist[kept:].sum()
        groups = [k * num_quant_bins // kept for k in range(kept)]
        q = np.zeros(kept)
        for g in range(num_quant_bins):
            members = [k for k in range(kept) if groups[k] == g and hist[k] > 0]
            for k in members:
                q[k] = sum(hist[m] for m in members) / len(members)
        p, q = p / p.sum(), q / q.sum()
        kl = 0.0
        for pk, qk in zip(p, q):
            if pk > 0:
                kl = np.inf if qk == 0 else kl + pk * np.log(pk / qk)
        if best_kl is None or kl <= best_kl:  # ties go to the largest kept count
            best_kept, best_kl = kept, kl
    return best_kept


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_entropy_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    hist = np.histogram(np.abs(rng.standard_t(3, size=3000)), bins=48)[0]
    hist[rng.integers(0, 48, 4)] = 0  # empty bins exercise the non-zero bookkeeping
    edges = np.linspace(0, 4.8, 49)
    amax = compute_amax_entropy(hist, edges, num_bits=4, start_bin=8)  # 8 quantized bins
    assert amax == pytest.approx(edges[entropy_reference(hist, 8, 8)])


def test_reductions_accept_numpy_and_percentile_hand_value():
    hist = np.array([10, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    edges = np.arange(11, dtype=np.float64)
    assert compute_amax_percentile(hist, edges, 90.0) == 1.0  # 10 of 11 values lie in bin 0
    assert compute_amax_percentile(hist, edges, 100.0) == 10.0
    assert compute_amax_mse(np.array([0, 0, 5]), np.array([0.0, 1.0, 2.0, 3.0]), start_bin=1) > 0


def test_amax_for_60_quantizers_is_fast_enough_to_be_vectorised():
    """Not a timing test: checks the reduction runs on full 2048-bin histograms for many
    quantizers without error (the benchmark prints the time)."""
    calib = HistogramCalibrator()
    calib.collect(torch.randn(100_000))
    for method in ('percentile', 'mse', 'entropy'):
        assert calib.compute_amax(method).item() > 0


@pytest.mark.parametrize('method', ['percentile', 'mse', 'entropy'])
def test_skip_zeros_fits_the_values_a_sparse_tensor_carries(method):
    """A BEV-like input, 95 % exact zeros: with skip_zeros the histogram, and every amax from
    it, equals that of the non-zero values alone; without it the zeros pull a percentile in."""
    torch.manual_seed(3)
    values = torch.randn(20_000).abs() * 3 + 0.1
    sparse = torch.zeros(400_000)
    sparse[torch.randperm(400_000)[:20_000]] = values
    kwargs = {'percentile': 99.0} if method == 'percentile' else {}
    skipping = HistogramCalibrator(num_bins=512, skip_zeros=True)
    skipping.collect(sparse)
    nonzero_only = HistogramCalibrator(num_bins=512)
    nonzero_only.collect(values)
    assert torch.equal(skipping.calib_hist, nonzero_only.calib_hist)
    amax = skipping.compute_amax(method, **kwargs).item()
    assert amax == nonzero_only.compute_amax(method, **kwargs).item()
    if method == 'percentile':  # 3|N(0,1)| + 0.1: the 99th percentile is 3 * 2.5758 + 0.1
        assert amax == pytest.approx(7.83, abs=0.07)
        counting_zeros = HistogramCalibrator(num_bins=512)
        counting_zeros.collect(sparse)
        # with the zeros, the top 1 % is the top 20 % of the values: 3 * 1.2816 + 0.1
        assert counting_zeros.compute_amax(method, **kwargs).item() == pytest.approx(
            3.94, abs=0.07)


def test_skip_zeros_needs_a_histogram():
    from quantization import QuantDescriptor
    with pytest.raises(ValueError, match='skip_zeros needs calib_method="histogram"'):
        QuantDescriptor(skip_zeros=True)
    assert QuantDescriptor(calib_method='histogram', skip_zeros=True).to_dict()['skip_zeros']
