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
        """The running max over all distributed ranks (every rank must call it). A rank that saw
        no data takes the others' max; when no rank saw any, every rank raises (none waits)."""
        gathered = [None] * dist.get_world_size()
        mine = None if self.calib_amax is None else self.calib_amax.detach().cpu()
        dist.all_gather_object(gathered, mine)
        collected = [amax for amax in gathered if amax is not None]
        if not collected:
            raise ValueError('no rank collected calibration data')
        if len({tuple(amax.shape) for amax in collected}) > 1:
            raise ValueError(f'ranks collected amax of different shapes: '
                             f'{sorted({tuple(a.shape) for a in collected})}')
        device = self.calib_amax.device if self.calib_amax is not None else 'cpu'
        self.calib_amax = torch.stack(collected).amax(0).to(device)

    def compute_amax(self, method: str = 'max', **kwargs) -> Optional[torch.Tensor]:
        """The running max, or None when nothing was collected.

        ``method`` other than 'max' is accepted and ignored, so one call serves a model whose
        weight quantizers use max and activation quantizers use a histogram method.
        """
        return None if self.calib_amax is None else self.calib_amax.clone()
