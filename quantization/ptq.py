"""Post-training quantization in one call: recipe, then calibration."""
from typing import Iterable, Optional

from torch import nn

from .calibration import CalibrationManager, ForwardFn
from .recipe import QuantRecipe


def quantize_and_calibrate(model: nn.Module,
                           recipe: QuantRecipe,
                           data: Iterable,
                           num_batches: int,
                           method: str = 'mse',
                           forward_fn: Optional[ForwardFn] = None,
                           progress: bool = True,
                           share_ranks: bool = True,
                           **method_kwargs) -> dict:
    """Apply ``recipe`` to the float ``model`` in place and calibrate it on ``num_batches`` of
    ``data`` (amax by ``method``; ``share_ranks``: see :class:`CalibrationManager`). Returns the
    recipe's pass counts plus ``'batches'``."""
    counts = recipe.apply(model)
    manager = CalibrationManager(model, forward_fn=forward_fn, progress=progress,
                                 share_ranks=share_ranks)
    counts['batches'] = manager.calibrate(data, num_batches, method, **method_kwargs)
    return counts
