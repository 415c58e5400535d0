"""CenterDistanceMAP's fast scoring of frame draws against nuscenes-devkit on the same frames."""
import numpy as np
import pytest

from projects.CenterPoint.data.synthetic_lidar import CLASSES
from projects.CenterPoint.metric import CenterDistanceMAP


def random_frame(rng, token):
    """Ground truth of a few classes and noisy, partly missed, partly spurious detections."""
    count = rng.integers(0, 7)
    gt = np.zeros((count, 9))
    gt[:, :2] = rng.uniform(-25, 25, (count, 2))
    gt[:, 3:6] = rng.uniform(0.5, 5, (count, 3))
    gt_labels = rng.integers(0, 4, count)  # 'pedestrian' never appears: absent from the mean
    found = rng.random(count) < 0.8
    pred = gt[found].copy()
    pred[:, :2] += rng.normal(0, 1.2, (len(pred), 2))  # some within 0.5 m, some beyond 4 m
    spurious = np.zeros((rng.integers(0, 4), 9))
    spurious[:, :2] = rng.uniform(-25, 25, (len(spurious), 2))
    return {
        'token': token,
        'gt_boxes': gt.astype(np.float32),
        'gt_labels': gt_labels,
        'pred_boxes': np.concatenate([pred, spurious]).astype(np.float32),
        'pred_labels': np.concatenate([gt_labels[found], rng.integers(0, 4, len(spurious))]),
        'pred_scores': rng.random(len(pred) + len(spurious)).astype(np.float32),
    }


@pytest.fixture(scope='module')
def scored():
    rng = np.random.default_rng(0)
    results = [random_frame(rng, str(i)) for i in range(40)]
    metric = CenterDistanceMAP()
    metric.dataset_meta = {'classes': CLASSES}
    return metric, results, metric.frame_statistics(results)


def test_all_frames_equal_the_devkit(scored):
    metric, results, statistics = scored
    expected = metric.compute_metrics(results)
    fast = metric.metrics_of_frames(statistics, np.arange(len(results)))
    assert set(fast) == set(expected) and 'AP_pedestrian' not in fast
    for key, value in expected.items():
        assert fast[key] == pytest.approx(value, abs=1e-9), key


def test_draws_with_repeated_frames_equal_the_devkit(scored):
    metric, results, statistics = scored
    rng = np.random.default_rng(7)
    for _ in range(3):
        indices = rng.integers(0, len(results), len(results))
        # the devkit sees a repeated frame as another frame with the same boxes
        copies = [dict(results[i], token=f'draw{k}') for k, i in enumerate(indices)]
        expected = metric.compute_metrics(copies)
        fast = metric.metrics_of_frames(statistics, indices)
        for key, value in expected.items():
            assert fast[key] == pytest.approx(value, abs=1e-9), key
