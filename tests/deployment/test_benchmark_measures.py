"""The benchmark's measures against hand-computed values: interleaved speed ratios (a fake clock
whose runners take known times), centred cosine and per-class IoU agreement."""
import numpy as np
import pytest

from deployment.profiling import interleaved_speedups
from deployment.verify import centered_cosine, class_iou_agreement


def test_interleaved_speedups_rotate_and_take_the_median_ratio():
    now, order = [0.0], []
    durations = {'float': [10.0, 10.0, 10.0], 'int8': [5.0, 5.0, 2.5], 'slow': [20.0] * 3}
    calls = {name: 0 for name in durations}

    def runner(name):
        def run():
            order.append(name)
            now[0] += durations[name][calls[name]]
            calls[name] += 1
        return run

    result = interleaved_speedups({name: runner(name) for name in durations}, 'float', rounds=3,
                                  pause=0.0, clock=lambda: now[0], sleep=lambda s: None)
    # each round starts one model later
    assert order == ['float', 'int8', 'slow', 'int8', 'slow', 'float', 'slow', 'float', 'int8']
    assert result['int8'] == {'ratio': 2.0, 'low': 2.0, 'high': 4.0, 'median_ms': 5000.0,
                              'rounds': 3}
    assert result['slow']['ratio'] == 0.5 and result['float']['ratio'] == 1.0
    with pytest.raises(KeyError, match="baseline 'fp16'"):
        interleaved_speedups({'float': runner('float')}, 'fp16')


def test_centered_cosine_ignores_per_class_offsets():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5))
    offset = logits + 100.0 * rng.normal(size=(2, 3, 1, 1))  # per image and class
    assert centered_cosine(logits, offset) == pytest.approx(1.0)
    flipped = logits.copy()
    flipped[1] = -flipped[1]
    assert centered_cosine(logits, flipped) == pytest.approx(-1.0)  # the worst image counts


def test_class_iou_agreement_by_hand():
    # reference classes [[0, 0], [1, 1]]; candidate [[0, 1], [1, 1]]:
    # class 0: 1 / 2, class 1: 2 / 3 -> 58.33 %
    def logits(classes):
        return np.eye(2)[np.array(classes)].transpose(2, 0, 1)[None]

    reference, candidate = logits([[0, 0], [1, 1]]), logits([[0, 1], [1, 1]])
    assert class_iou_agreement(reference, candidate) == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
    assert class_iou_agreement(reference, reference) == 100.0
