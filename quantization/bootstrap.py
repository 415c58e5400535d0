"""Bootstrap intervals over validation frames, for a metric and for the paired difference of two
models' metrics on the same frames.

Every round draws one multiset of frame indices (with replacement, as many as there are frames)
and scores every model on it, so differences are paired: the frames that are hard for one model
are drawn for the other as well. A metric scores a draw with ``compute_metrics`` on the drawn
entries of its per-frame results; a metric may instead define ``frame_statistics(results)``
(computed once) and ``metrics_of_frames(statistics, indices)`` (per draw) to be fast.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .evaluation import FrameResults

#: Rounds and confidence level of the intervals the tools print.
DEFAULT_ROUNDS = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A figure on the whole set (``value``) with its bootstrap percentile interval
    ``[low, high]`` and standard error (the standard deviation over the rounds)."""
    value: float
    low: float
    high: float
    stderr: float

    def __str__(self) -> str:
        return f'{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]'

    def __neg__(self) -> 'Interval':
        return Interval(-self.value, -self.high, -self.low, self.stderr)

    def judge(self, low: Optional[float] = None, high: Optional[float] = None) -> str:
        """'met' when the whole interval lies inside ``[low, high]`` (None: unbounded),
        'missed' when it lies wholly outside, 'undecided' otherwise."""
        above = low is None or self.low >= low
        below = high is None or self.high <= high
        if above and below:
            return 'met'
        if (low is not None and self.high < low) or (high is not None and self.low > high):
            return 'missed'
        return 'undecided'


@dataclass
class BootstrapResult:
    """``metric[model][key]`` and ``difference[model][key]`` (model minus ``reference``, paired
    on the same draws) for every metric key."""
    keys: List[str]
    reference: Optional[str]
    frames: int
    rounds: int
    level: float
    metric: Dict[str, Dict[str, Interval]] = field(default_factory=dict)
    difference: Dict[str, Dict[str, Interval]] = field(default_factory=dict)


class _Scorer:
    """Scores one model's frames of one metric on a draw of indices (keys with its prefix)."""

    def __init__(self, entry: FrameResults):
        self.metric = entry.metric
        self.prefix = f'{entry.metric.prefix}/' if entry.metric.prefix else ''
        statistics = getattr(self.metric, 'frame_statistics', None)
        self.statistics = statistics(entry.results) if statistics else entry.results
        self.frames = len(entry.results)

    def __call__(self, indices: np.ndarray) -> Dict[str, float]:
        of_frames = getattr(self.metric, 'metrics_of_frames', None)
        if of_frames is not None:
            metrics = of_frames(self.statistics, indices)
        else:
            metrics = self.metric.compute_metrics([self.statistics[i] for i in indices])
        return {self.prefix + key: value for key, value in metrics.items()}


def _score(scorers: List[_Scorer], indices: np.ndarray) -> Dict[str, float]:
    scores = {}
    for scorer in scorers:
        scores.update(scorer(indices))
    return scores


def _interval(value: float, samples: np.ndarray, level: float) -> Interval:
    """Percentile interval; draws where the key is undefined (NaN: a class absent from the
    drawn frames) are left out."""
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(samples, [tail, 100.0 - tail])
    return Interval(value, float(low), float(high), float(np.nanstd(samples, ddof=1)))


def bootstrap(evaluations: Dict[str, List[FrameResults]],
              keys: Sequence[str],
              reference: Optional[str] = None,
              rounds: int = DEFAULT_ROUNDS,
              seed: int = 0,
              level: float = DEFAULT_LEVEL,
              versus: Optional[Dict[str, str]] = None) -> BootstrapResult:
    """Intervals of every metric key in ``keys`` (e.g. ``['det/mAP']``) for every model in
    ``evaluations`` (name -> :func:`quantization.evaluation.evaluate_frames`' frames), and of
    every model minus ``reference`` (or minus the model ``versus`` names for it), paired on the
    same draws. All models must have scored the same frames; keys a model does not report on the
    whole set are left out for it."""
    versus = dict(versus or {})
    scorers = {name: [_Scorer(entry) for entry in frames] for name, frames in evaluations.items()}
    counts = {name: {s.frames for s in group} for name, group in scorers.items()}
    if len({count for group in counts.values() for count in group}) != 1:
        raise ValueError(f'bootstrap pairs frames, but the models scored different numbers: '
                         f'{counts}')
    missing = sorted({reference, *versus.values()} - {None} - set(scorers))
    if missing:
        raise KeyError(f'reference {missing[0]!r} is not among {list(scorers)}')
    frames = next(iter(next(iter(counts.values()))))
    if frames < 2:
        raise ValueError(f'bootstrap needs at least 2 frames, got {frames}')
    values = {name: _score(group, np.arange(frames)) for name, group in scorers.items()}
    unknown = [key for key in keys if not any(key in v for v in values.values())]
    if unknown:
        raise KeyError(f'metric keys {unknown} are not among '
                       f'{sorted(next(iter(values.values())))}')
    rng = np.random.default_rng(seed)
    draws = {name: {key: np.full(rounds, np.nan) for key in keys} for name in scorers}
    for round_index in range(rounds):
        indices = rng.integers(0, frames, frames)
        for name, group in scorers.items():
            scores = _score(group, indices)
            for key in keys:
                draws[name][key][round_index] = scores.get(key, np.nan)
    result = BootstrapResult(list(keys), reference, frames, rounds, level)
    for name in scorers:
        present = [key for key in keys if key in values[name]]
        result.metric[name] = {
            key: _interval(values[name][key], draws[name][key], level) for key in present}
        base = versus.get(name, reference)
        if base is not None and name != base:
            result.difference[name] = {
                key: _interval(values[name][key] - values[base][key],
                               draws[name][key] - draws[base][key], level)
                for key in present if key in values[base]}
    return result


def frames_needed(stderr: float, frames: int, target: float) -> int:
    """Frames for a standard error of ``target``, from ``stderr`` measured on ``frames``
    (standard errors shrink as one over the square root of the frame count)."""
    return int(np.ceil(frames * (stderr / target)**2))
