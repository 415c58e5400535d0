"""Calibrators: plain objects with ``collect(x)``, ``reset()``, ``sync()``, ``compute_amax()``."""
from .histogram import HistogramCalibrator
from .max import MaxCalibrator
from .reductions import (AMAX_REDUCTIONS, compute_amax_entropy, compute_amax_max, compute_amax_mse,
                         compute_amax_percentile)

__all__ = [
    'MaxCalibrator', 'HistogramCalibrator', 'AMAX_REDUCTIONS', 'compute_amax_max',
    'compute_amax_percentile', 'compute_amax_mse', 'compute_amax_entropy'
]
