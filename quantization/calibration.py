"""CalibrationManager: collect statistics over batches and load amax into every quantizer."""
import logging
from itertools import islice
from typing import Any, Callable, Iterable, Optional

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.model import BaseModel, is_model_wrapper
from torch import nn
from tqdm import tqdm

from .summary import print_quant_summary
from .toggle import named_quantizers

logger = logging.getLogger(__name__)

ForwardFn = Callable[[nn.Module, Any], Any]


def default_forward(model: nn.Module, batch) -> Any:
    """Run one batch: MMEngine models with ``test_step`` (data preprocessor and ``'predict'``
    mode, which every MMEngine model implements; mmdet3d detectors have no ``'tensor'`` mode),
    tensors as ``model(batch)``, others as ``model(**batch)`` or ``model(*batch)``."""
    if isinstance(model, BaseModel) and not isinstance(batch, torch.Tensor):
        return model.test_step(batch)
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (list, tuple)):
        return model(*batch)
    return model(batch)


class StopForward(Exception):
    """Raised by a hook that has what it needs: the rest of the forward is not run."""


def forward_until_stopped(model: nn.Module, batch, forward_fn: ForwardFn) -> None:
    """``forward_fn(model, batch)``, ended early where a hook raised :class:`StopForward`."""
    try:
        forward_fn(model, batch)
    except StopForward:
        pass


@torch.no_grad()
def run_batches(model: nn.Module, data: Iterable, num_batches: int,
                forward_fn: Optional[ForwardFn] = None,
                pre_hooks: Iterable = ()) -> int:
    """Run the first ``num_batches`` batches of ``data`` through ``model`` with the forward
    pre-hooks ``(module, hook)`` registered for the run only; returns the batches run."""
    forward_fn = forward_fn or default_forward
    handles = [module.register_forward_pre_hook(hook) for module, hook in pre_hooks]
    ran = 0
    try:
        for batch in islice(data, num_batches):
            forward_fn(model, batch)
            ran += 1
    finally:
        for handle in handles:
            handle.remove()
    return ran


class CalibrationManager:
    """PTQ calibration of every enabled TensorQuantizer of a model.

    Quantizers with a fixed amax (from their descriptor) are left alone. Under
    ``torch.distributed`` each rank collects on its own batches, and :meth:`compute_amax` merges
    the statistics (running max max-reduced, histograms summed) so every rank loads the same amax.

    Args:
        model (nn.Module): The quantized model (a DDP wrapper is unwrapped).
        forward_fn (callable, optional): ``forward_fn(model, batch)``; defaults to
            :func:`default_forward`.
        progress (bool): Show a progress bar. Defaults to True.
        share_ranks (bool): Under ``torch.distributed``, share the batches and merge the
            statistics (True), or calibrate each rank alone on all the batches it is given, as
            one process would (False). Defaults to True.
    """

    def __init__(self,
                 model: nn.Module,
                 forward_fn: Optional[ForwardFn] = None,
                 progress: bool = True,
                 share_ranks: bool = True):
        self.model = model.module if is_model_wrapper(model) else model
        self.share_ranks = share_ranks
        self.forward_fn = forward_fn or default_forward
        self.progress = progress
        self.quantizers = {
            name: q
            for name, q in named_quantizers(self.model)
            if q.is_enabled and q.quant_desc.amax is None
        }
        if not self.quantizers:
            raise ValueError(f'{type(self.model).__name__} has no enabled quantizer to calibrate; '
                             'run quantize_model (or a QuantRecipe) first')

    @torch.no_grad()
    def collect(self, data: Iterable, num_batches: int) -> int:
        """Feed up to ``num_batches`` batches of ``data`` through the model in calibration mode.

        Under ``torch.distributed``, ``num_batches`` counts the batches of all ranks: each rank
        feeds its share of its own (sharded) data, so N ranks of batch size B calibrate on the
        same samples as one process with B (MMEngine's samplers deal samples round-robin).

        Returns:
            int: Batches actually seen, over all ranks.
        """
        if not isinstance(num_batches, int) or num_batches <= 0:
            raise ValueError(f'calibration needs at least one batch, got num_batches={num_batches}')
        rank, world = get_dist_info() if self.share_ranks else (0, 1)
        if num_batches < world:
            raise ValueError(f'{num_batches} calibration batches cannot be shared by {world} '
                             f'processes; ask for at least {world}')
        share = num_batches // world + (rank < num_batches % world)
        was_training = self.model.training
        self.model.eval()
        for quantizer in self.quantizers.values():
            quantizer.calibrator.reset()
            quantizer.disable_quant()
            quantizer.enable_calib()
        seen = 0
        try:
            batches = islice(data, share)
            for batch in tqdm(batches, total=share, desc='Calibrating', disable=not self.progress):
                self.forward_fn(self.model, batch)
                seen += 1
        finally:
            for quantizer in self.quantizers.values():
                quantizer.disable_calib()
                quantizer.enable_quant()
            self.model.train(was_training)
        if world > 1:
            seen_by_all = torch.tensor([seen], dtype=torch.int64)
            all_reduce(seen_by_all)  # moved to the backend's device and back by mmengine
            seen = int(seen_by_all.item())
        if seen == 0:
            raise ValueError('calibration saw 0 batches: the calibration data is empty')
        if seen < num_batches:
            logger.warning('calibration asked for %d batches but the data holds %d; '
                           'calibrated on %d', num_batches, seen, seen)
        logger.info('collected calibration statistics over %d batches', seen)
        return seen

    def compute_amax(self, method: str = 'mse', strict: bool = True, **kwargs):
        """Load amax into every quantizer: histogram quantizers by ``method``, max ones by max.

        Args:
            method (str): 'max', 'percentile', 'mse' or 'entropy'.
            strict (bool): Raise (naming the quantizer) when one saw no data.
            **kwargs: Passed to the reduction (``percentile=99.99``, ``start_bin=128``).
        """
        distributed = self.share_ranks and get_dist_info()[1] > 1
        for name, quantizer in tqdm(
                self.quantizers.items(), desc=f'amax ({method})', disable=not self.progress):
            if distributed:
                quantizer.sync_calibrator()
            quantizer.load_calib_amax(method, strict=strict, **kwargs)

    def calibrate(self, data: Iterable, num_batches: int, method: str = 'mse',
                  summary: bool = False, **kwargs) -> int:
        """:meth:`collect` then :meth:`compute_amax` (``summary``: then print every quantizer,
        :func:`~quantization.summary.print_quant_summary`); returns the batches seen."""
        seen = self.collect(data, num_batches)
        self.compute_amax(method, **kwargs)
        if summary:
            print_quant_summary(self.model)
        return seen
