"""Running absolute-maximum calibrator."""
from typing import Optional

import torch
import torch.distributed as dist

from ..tensor_quant import reduce_amax


class MaxCalibrator:
    """Keeps the running max of |x|, per tensor or per channel.

    Args:
        axis (int, optional): Channel axis; None for one value per tensor. Defaults to None.
    """

    def __init__(self, axis: Optional[int] = None):
        self.axis = axis
        self.reset()

    def reset(self):
        """Forget everything collected."""
        self.calib_amax: Optional[torch.Tensor] = None
        self.num_batches = 0

    def collect(self, x: torch.Tensor):
        """Update the running max with a batch ``x`` (any shape)."""
        batch_amax = reduce_amax(x, self.axis)
        if self.calib_amax is None:
            self.calib_amax = batch_amax
        elif self.calib_amax.shape != batch_amax.shape:
            raise ValueError(f'per-channel amax shape changed from {tuple(self.calib_amax.shape)} '
                             f'to {tuple(batch_amax.shape)} (axis={self.axis})')
        else:
            self.calib_amax = torch.maximum(self.calib_amax, batch_amax)
        self.num_batches += 1

    def sync(self):
        """Max-reduce the running max over all distributed ranks (every rank must call it)."""
        if self.calib_amax is None:
            raise ValueError('MaxCalibrator.sync: this rank collected no data')
        dist.all_reduce(self.calib_amax, op=dist.ReduceOp.MAX)

    def compute_amax(self, method: str = 'max', **kwargs) -> Optional[torch.Tensor]:
        """The running max, or None when nothing was collected.

        ``method`` other than 'max' is accepted and ignored, so one call serves a model whose
        weight quantizers use max and activation quantizers use a histogram method.
        """
        return None if self.calib_amax is None else self.calib_amax.clone()
