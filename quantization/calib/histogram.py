"""Histogram calibrator of |x| and its reductions to amax (percentile, MSE, entropy).

The bin width is always a power of two, ``2**width_exp``, with bin ``k`` covering
``[k, k + 1) * 2**width_exp``. When a batch exceeds the range, the width doubles (as often as
needed) and adjacent bins merge. A histogram built batch by batch therefore equals the one built
from all batches at once, and histograms of several DDP ranks merge exactly.
"""
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import get_comm_device

from .reductions import AMAX_REDUCTIONS

#: Width exponent used when everything seen so far is 0.
MIN_WIDTH_EXP = -64


def width_exp_for(x_max: float, num_bins: int) -> int:
    """Smallest e such that ``num_bins * 2**e > x_max``."""
    if x_max <= 0:
        return MIN_WIDTH_EXP
    exp = max(int(np.floor(np.log2(x_max / num_bins))), MIN_WIDTH_EXP)
    while num_bins * 2.0**exp <= x_max:
        exp += 1
    while exp > MIN_WIDTH_EXP and num_bins * 2.0**(exp - 1) > x_max:
        exp -= 1
    return exp


class HistogramCalibrator:
    """Collects a histogram of |x| for one per-tensor quantizer.

    Args:
        num_bins (int): Bins of the histogram. Defaults to 2048.
        num_bits (int): Bits of the target grid (for MSE / entropy). Defaults to 8.
        unsigned (bool): Whether the target grid is unsigned. Defaults to False.
        skip_zeros (bool): Leave exact zeros out (see :class:`QuantDescriptor`). Defaults to
            False.
    """

    def __init__(self, num_bins: int = 2048, num_bits: int = 8, unsigned: bool = False,
                 skip_zeros: bool = False):
        self.num_bins = num_bins
        self.num_bits = num_bits
        self.unsigned = unsigned
        self.skip_zeros = skip_zeros
        self.reset()

    def reset(self):
        """Forget everything collected."""
        self.calib_hist: Optional[torch.Tensor] = None  # (num_bins,) int64 counts
        self.width_exp = MIN_WIDTH_EXP
        self.num_batches = 0

    @property
    def bin_edges(self) -> torch.Tensor:
        """(num_bins + 1,) float64 bin edges in input units."""
        return torch.arange(self.num_bins + 1, dtype=torch.float64) * 2.0**self.width_exp

    def _coarsen_to(self, width_exp: int):
        """Merge bins so that the width becomes ``2**width_exp`` (>= the current one)."""
        shift = width_exp - self.width_exp
        if shift <= 0:
            return
        factor = 2**min(shift, 62)
        target = torch.div(
            torch.arange(self.num_bins, device=self.calib_hist.device),
            factor,
            rounding_mode='floor')
        merged = torch.zeros_like(self.calib_hist)
        merged.scatter_add_(0, target, self.calib_hist)
        self.calib_hist = merged
        self.width_exp = width_exp

    def collect(self, x: torch.Tensor):
        """Add |x| of a batch (any shape) to the histogram, growing its range when needed."""
        abs_x = x.detach().abs().flatten().float()
        if self.skip_zeros:
            abs_x = abs_x[abs_x != 0]
        x_max = abs_x.max().item() if abs_x.numel() else 0.0
        needed_exp = width_exp_for(x_max, self.num_bins)
        if self.calib_hist is None:
            self.calib_hist = torch.zeros(self.num_bins, dtype=torch.int64, device=abs_x.device)
            self.width_exp = needed_exp
        else:
            self._coarsen_to(needed_exp)
        # x * 2**-e is exact in float32, so the bin of a value never depends on batch order.
        bin_index = torch.floor(abs_x * 2.0**-self.width_exp).long().clamp_(max=self.num_bins - 1)
        self.calib_hist += torch.bincount(bin_index, minlength=self.num_bins)
        self.num_batches += 1

    def sync(self):
        """Sum the histograms of all distributed ranks (every rank must call it)."""
        device = get_comm_device()
        if self.calib_hist is None:
            self.calib_hist = torch.zeros(self.num_bins, dtype=torch.int64, device=device)
        self.calib_hist = self.calib_hist.to(device)
        width_exp = torch.tensor([self.width_exp], dtype=torch.int64, device=device)
        dist.all_reduce(width_exp, op=dist.ReduceOp.MAX)
        self._coarsen_to(int(width_exp.item()))
        dist.all_reduce(self.calib_hist, op=dist.ReduceOp.SUM)

    def compute_amax(self, method: str = 'mse', **kwargs) -> Optional[torch.Tensor]:
        """Reduce the histogram to amax.

        Args:
            method (str): 'max', 'percentile', 'mse' or 'entropy'.
            **kwargs: Passed to the reduction (e.g. ``percentile=99.99``, ``start_bin=128``).

        Returns:
            Tensor: () float32 amax in input units, or None when nothing was collected.
        """
        if method not in AMAX_REDUCTIONS:
            raise ValueError(
                f'unknown amax method {method!r}; choose one of {sorted(AMAX_REDUCTIONS)}')
        if self.calib_hist is None or int(self.calib_hist.sum()) == 0:
            return None
        counts = self.calib_hist.cpu()
        used_bins = int(torch.nonzero(counts).max()) + 1  # drop empty bins above the data
        reduce = AMAX_REDUCTIONS[method]
        if method in ('mse', 'entropy'):
            kwargs = dict(num_bits=self.num_bits, unsigned=self.unsigned, **kwargs)
        amax = reduce(counts[:used_bins], self.bin_edges[:used_bins + 1], **kwargs)
        return torch.tensor(float(amax), dtype=torch.float32)
