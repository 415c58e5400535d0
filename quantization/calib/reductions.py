"""Pure functions that reduce a histogram of |x| to amax, vectorised over all candidates.

Each takes ``calib_hist`` (n,) counts and ``bin_edges`` (n + 1,) in input units, as torch tensors
or numpy arrays, and returns amax as a Python float. Candidates for MSE and entropy are the bin
edges ``bin_edges[i]`` for ``i`` in ``start_bin..n``.
"""
import torch

from ..tensor_quant import grid_max, quantize_dequantize

_ROWS_PER_CHUNK = 256  # candidates evaluated at once; bounds memory to ~256 x n float64


def _as_float64(values) -> torch.Tensor:
    return torch.as_tensor(values).detach().to(torch.float64).cpu()


def compute_amax_max(calib_hist, bin_edges) -> float:
    """Upper edge of the last non-empty bin."""
    counts = _as_float64(calib_hist)
    nonzero = torch.nonzero(counts)
    if not len(nonzero):
        return 0.0
    return float(_as_float64(bin_edges)[int(nonzero.max()) + 1])


def compute_amax_percentile(calib_hist, bin_edges, percentile: float = 99.99) -> float:
    """Smallest upper bin edge below which at least ``percentile`` % of the values lie."""
    if not 0 < percentile <= 100:
        raise ValueError(f'percentile must be in (0, 100], got {percentile}')
    counts = _as_float64(calib_hist)
    cdf = torch.cumsum(counts, 0) / counts.sum()
    idx = int(torch.searchsorted(cdf, torch.tensor([percentile / 100], dtype=torch.float64)))
    return float(_as_float64(bin_edges)[min(idx, len(counts) - 1) + 1])


def compute_amax_mse(calib_hist,
                     bin_edges,
                     num_bits: int = 8,
                     unsigned: bool = False,
                     start_bin: int = 128) -> float:
    """amax minimising the mean squared quantization error of the histogram.

    The error of candidate ``a`` is ``sum_k n_k (c_k - fq(c_k; a))**2 / sum_k n_k`` over bin
    centres ``c_k`` with counts ``n_k``, ``fq`` the fake quantization of
    :mod:`quantization.tensor_quant` with ``scale = a / q_max`` (on ``0..q_max``: the values are
    magnitudes). Ties go to the smallest amax.
    """
    counts = _as_float64(calib_hist)
    edges = _as_float64(bin_edges)
    centers = (edges[:-1] + edges[1:]) / 2
    nonzero = counts > 0
    weights, centers = counts[nonzero], centers[nonzero]
    quant_max = grid_max(num_bits, unsigned)
    candidates = edges[min(start_bin, len(counts)):]
    errors = []
    for chunk in torch.split(candidates, _ROWS_PER_CHUNK):
        scale = (chunk / quant_max).unsqueeze(1)
        dequant = quantize_dequantize(centers, scale, 0, quant_max)
        errors.append(((dequant - centers)**2 * weights).sum(1))
    errors = torch.cat(errors) / weights.sum()
    return float(candidates[int(torch.argmin(errors))])


def compute_amax_entropy(calib_hist,
                         bin_edges,
                         num_bits: int = 8,
                         unsigned: bool = False,
                         start_bin: int = 128) -> float:
    """amax minimising the KL divergence between the histogram and its quantized version.

    TensorRT's entropy calibration, as pytorch-quantization computes it: the count of bin 0 is
    replaced by that of bin 1 (ignoring the spike of exact zeros after ReLU). For ``i`` kept bins,
    the reference ``P`` is ``hist[:i]`` with all counts beyond added to bin ``i - 1``; bins
    ``0..i-1`` are merged into ``q_bins`` groups, the magnitudes the grid holds (``q_max + 1``:
    128 for signed INT8, 256 unsigned; bin ``k`` in group
    ``k * q_bins // i``), and ``Q`` spreads each group's total evenly over its non-empty bins.
    ``KL(P || Q)`` is infinite where ``P > 0 = Q``. Ties go to the largest amax.
    """
    counts = _as_float64(calib_hist).clone()
    edges = _as_float64(bin_edges)
    num_bins = len(counts)
    if num_bins > 1:
        counts[0] = counts[1]
    q_bins = grid_max(num_bits, unsigned) + 1
    first = min(max(start_bin, 1), num_bins)
    kept = torch.arange(first, num_bins + 1)  # candidate numbers of kept bins
    bin_index = torch.arange(num_bins)
    nonzero = counts > 0
    beyond = counts.flip(0).cumsum(0).flip(0)  # beyond[i] = counts[i:].sum()
    beyond = torch.cat([beyond, torch.zeros(1, dtype=torch.float64)])
    divergences = []
    for kept_chunk in torch.split(kept, _ROWS_PER_CHUNK):
        rows = kept_chunk.unsqueeze(1)
        inside = bin_index < rows  # (C, n)
        group = torch.where(inside, bin_index * q_bins // rows, torch.full_like(rows, q_bins))
        used = inside & nonzero
        group_sum = torch.zeros(len(rows), q_bins + 1, dtype=torch.float64)
        group_sum.scatter_add_(1, group, torch.where(used, counts, torch.zeros_like(counts)))
        group_nnz = torch.zeros(len(rows), q_bins + 1, dtype=torch.float64)
        group_nnz.scatter_add_(1, group, used.double())
        group_mean = group_sum / group_nnz.clamp(min=1)
        quantized = torch.where(used, torch.gather(group_mean, 1, group), torch.zeros(()))
        reference = torch.where(inside, counts, torch.zeros(()))
        reference.scatter_add_(1, rows - 1, beyond[kept_chunk].unsqueeze(1))
        reference = reference / reference.sum(1, keepdim=True)
        quantized = quantized / quantized.sum(1, keepdim=True).clamp(min=1e-300)
        positive = reference > 0
        ratio = torch.where(positive, reference / quantized, torch.ones(()))
        terms = torch.where(positive, reference * torch.log(ratio), torch.zeros(()))
        divergences.append(terms.sum(1))
    divergences = torch.cat(divergences)
    best = len(divergences) - 1 - int(torch.argmin(divergences.flip(0)))
    return float(edges[int(kept[best])])


AMAX_REDUCTIONS = {
    'max': compute_amax_max,
    'percentile': compute_amax_percentile,
    'mse': compute_amax_mse,
    'entropy': compute_amax_entropy,
}
