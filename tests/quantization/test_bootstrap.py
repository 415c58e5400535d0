"""Bootstrap intervals against the closed-form standard error of a mean, paired differences,
and the met / missed / undecided rule."""
import numpy as np
import pytest
from mmengine.evaluator import BaseMetric

from quantization.bootstrap import Interval, bootstrap, frames_needed
from quantization.evaluation import FrameResults


class FrameAccuracy(BaseMetric):
    """Accuracy in % from one 0/1 entry per frame."""
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        pass

    def compute_metrics(self, results):
        return {'accuracy': 100.0 * float(np.mean(results))}


class FastFrameAccuracy(FrameAccuracy):
    """The same metric through the fast protocol."""

    def frame_statistics(self, results):
        return np.asarray(results, dtype=float)

    def metrics_of_frames(self, statistics, indices):
        return {'accuracy': 100.0 * float(statistics[indices].mean())}


def frames(correct, metric=FrameAccuracy):
    return [FrameResults(metric(), list(correct))]


def test_interval_of_a_mean_matches_the_closed_form_standard_error():
    rng = np.random.default_rng(1)
    correct = (rng.random(400) < 0.8).astype(int)
    p = correct.mean()
    result = bootstrap({'model': frames(correct)}, ['toy/accuracy'], rounds=2000)
    interval = result.metric['model']['toy/accuracy']
    assert interval.value == pytest.approx(100 * p)
    closed_form = 100 * np.sqrt(p * (1 - p) / len(correct))
    assert interval.stderr == pytest.approx(closed_form, rel=0.1)
    # a 95 % percentile interval spans about 2 x 1.96 standard errors
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * closed_form, rel=0.15)
    assert result.frames == 400 and result.rounds == 2000


def test_paired_difference_is_tighter_than_unpaired_and_matches_its_closed_form():
    rng = np.random.default_rng(2)
    base = (rng.random(500) < 0.7).astype(int)
    flips = rng.random(500) < 0.04  # the second model differs on 4 % of the frames
    other = np.where(flips, 1 - base, base)
    result = bootstrap({'float': frames(base), 'int8': frames(other)}, ['toy/accuracy'],
                       reference='float', rounds=2000)
    difference = result.difference['int8']['toy/accuracy']
    assert difference.value == pytest.approx(100 * (other.mean() - base.mean()))
    d = other - base
    closed_form = 100 * np.std(d, ddof=1) / np.sqrt(len(d))
    assert difference.stderr == pytest.approx(closed_form, rel=0.1)
    unpaired = np.hypot(result.metric['float']['toy/accuracy'].stderr,
                        result.metric['int8']['toy/accuracy'].stderr)
    assert difference.stderr < unpaired / 3
    assert 'float' not in result.difference


def test_a_model_can_be_paired_with_another_reference():
    rng = np.random.default_rng(4)
    base = (rng.random(300) < 0.6).astype(int)
    other = np.where(rng.random(300) < 0.1, 1 - base, base)
    third = np.where(rng.random(300) < 0.1, 1 - other, other)
    result = bootstrap({'a': frames(base), 'b': frames(other), 'c': frames(third)},
                       ['toy/accuracy'], reference='a', rounds=300, versus={'c': 'b'})
    alone = bootstrap({'b': frames(other), 'c': frames(third)}, ['toy/accuracy'],
                      reference='b', rounds=300)
    assert result.difference['c'] == alone.difference['c']  # same draws, same pairs
    assert result.difference['b']['toy/accuracy'].value == pytest.approx(
        100 * (other.mean() - base.mean()))


def test_fast_protocol_gives_the_same_draws():
    correct = (np.random.default_rng(3).random(60) < 0.5).astype(int)
    slow = bootstrap({'m': frames(correct)}, ['toy/accuracy'], rounds=200, seed=5)
    fast = bootstrap({'m': frames(correct, FastFrameAccuracy)}, ['toy/accuracy'], rounds=200,
                     seed=5)
    assert slow.metric['m'] == fast.metric['m']


def test_models_must_score_the_same_frames():
    with pytest.raises(ValueError, match='different numbers'):
        bootstrap({'a': frames([1, 0, 1]), 'b': frames([1, 0])}, ['toy/accuracy'])
    with pytest.raises(KeyError, match=r"\['det/mAP'\] are not among \['toy/accuracy'\]"):
        bootstrap({'a': frames([1, 0, 1])}, ['det/mAP'])


@pytest.mark.parametrize('interval, bounds, verdict', [
    (Interval(0.05, 0.02, 0.08, 0.01), (-0.1, 0.1), 'met'),
    (Interval(0.05, -0.15, 0.25, 0.1), (-0.1, 0.1), 'undecided'),
    (Interval(-0.5, -0.7, -0.3, 0.1), (-0.1, None), 'missed'),
    (Interval(0.3, 0.2, 0.4, 0.05), (None, 0.1), 'missed'),
    (Interval(0.3, 0.2, 0.4, 0.05), (-0.1, None), 'met'),
])
def test_judge(interval, bounds, verdict):
    assert interval.judge(*bounds) == verdict


def test_frames_needed_follows_one_over_square_root():
    assert frames_needed(0.3, 50, 0.1) == 450
    assert frames_needed(0.05, 50, 0.1) == 13
