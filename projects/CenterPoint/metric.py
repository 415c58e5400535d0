"""nuScenes-style detection mAP (BEV centre-distance matching at 0.5 / 1 / 2 / 4 m), computed with
nuscenes-devkit's own ``accumulate`` and ``calc_ap``, as AWML's T4Metric does."""
from typing import Dict, List, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmdet3d.registry import METRICS
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.utils import center_distance
from nuscenes.eval.detection.algo import accumulate, calc_ap
from nuscenes.eval.detection.data_classes import DetectionBox

DISTANCE_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)  # m


def to_detection_boxes(token: str,
                       boxes: np.ndarray,
                       labels: np.ndarray,
                       classes: Sequence[str],
                       scores: np.ndarray = None) -> List[DetectionBox]:
    """nuscenes-devkit boxes from ``[x, y, z, l, w, h, yaw, (vx, vy)]`` gravity-centre boxes.

    nuScenes sizes are (w, l, h) and rotations quaternions (w, x, y, z) about z.
    """
    detection_boxes = []
    for i, (box, label) in enumerate(zip(boxes, labels)):
        velocity = tuple(float(v) for v in box[7:9]) if len(box) >= 9 else (0.0, 0.0)
        detection_boxes.append(
            DetectionBox(
                sample_token=token,
                translation=tuple(float(v) for v in box[:3]),
                size=(float(box[4]), float(box[3]), float(box[5])),
                rotation=(float(np.cos(box[6] / 2)), 0.0, 0.0, float(np.sin(box[6] / 2))),
                velocity=velocity,
                detection_name=classes[int(label)],
                detection_score=float(scores[i]) if scores is not None else -1.0))
    return detection_boxes


def detection_map(gt: EvalBoxes,
                  predictions: EvalBoxes,
                  classes: Sequence[str],
                  min_recall: float = 0.1,
                  min_precision: float = 0.1) -> Dict[str, float]:
    """AP per class (mean over the distance thresholds, in %) and their mean ``mAP``, over the
    classes with ground truth in ``gt``: a class without any is absent (no ``AP_<name>``), as a
    0 would lower the mean for objects that were never there to find."""
    present = {box.detection_name for box in gt.all}
    with_gt = [name for name in classes if name in present]
    absent = [name for name in classes if name not in present]
    print_log(f'mAP over {len(with_gt)} of {len(classes)} classes, those with ground truth: '
              f'{", ".join(with_gt) or "none"}' + (f'; absent: {", ".join(absent)}' if absent
                                                   else ''), logger='current')
    result = {}
    for name in with_gt:
        aps = [
            calc_ap(
                accumulate(gt, predictions, name, center_distance, threshold), min_recall,
                min_precision) for threshold in DISTANCE_THRESHOLDS
        ]
        result[f'AP_{name}'] = 100.0 * float(np.mean(aps))
    result['mAP'] = float(np.mean([result[f'AP_{name}'] for name in with_gt])) if with_gt else 0.0
    return result


@METRICS.register_module()
class CenterDistanceMAP(BaseMetric):
    """mAP of 3D detections by BEV centre distance, per class and mean, in %.

    Ground truth comes from the samples' ``eval_ann_info`` (mmdet3d's Det3DDataset in test mode).
    """

    default_prefix = 'det'

    def process(self, data_batch: dict, data_samples: Sequence[dict]):
        for sample in data_samples:
            predictions = sample['pred_instances_3d']
            gt = sample['eval_ann_info']
            self.results.append({
                'token': str(sample.get('sample_idx', len(self.results))),
                'pred_boxes': _gravity_boxes(predictions['bboxes_3d']),
                'pred_labels': predictions['labels_3d'].cpu().numpy(),
                'pred_scores': predictions['scores_3d'].cpu().numpy(),
                'gt_boxes': _gravity_boxes(gt['gt_bboxes_3d']),
                'gt_labels': np.asarray(gt['gt_labels_3d']),
            })

    def compute_metrics(self, results: list) -> dict:
        classes = self.dataset_meta['classes']
        gt, predictions = EvalBoxes(), EvalBoxes()
        for result in results:
            gt.add_boxes(
                result['token'],
                to_detection_boxes(result['token'], result['gt_boxes'], result['gt_labels'],
                                   classes))
            predictions.add_boxes(
                result['token'],
                to_detection_boxes(result['token'], result['pred_boxes'], result['pred_labels'],
                                   classes, result['pred_scores']))
        return detection_map(gt, predictions, classes)

    # ------------------------------------------------------------- bootstrap over frames
    def frame_statistics(self, results: list) -> List[Dict[str, tuple]]:
        """Per frame and class: the ground-truth count, the predictions' scores and, per distance
        threshold, which of them matched (nuScenes' greedy matching, in its order: by score,
        ties by position, never across frames), so :meth:`metrics_of_frames` scores any draw of
        frames without matching again."""
        statistics = []
        for result in results:
            frame = {}
            for label, name in enumerate(self.dataset_meta['classes']):
                gt_xy = result['gt_boxes'][result['gt_labels'] == label, :2].astype(np.float64)
                keep = result['pred_labels'] == label
                scores = result['pred_scores'][keep].astype(np.float64)
                pred_xy = result['pred_boxes'][keep, :2].astype(np.float64)
                order = np.lexsort((np.arange(len(scores)), scores))[::-1]
                matched = np.stack([_greedy_match(pred_xy, gt_xy, order, threshold)
                                    for threshold in DISTANCE_THRESHOLDS]) if len(scores) else \
                    np.zeros((len(DISTANCE_THRESHOLDS), 0), bool)
                frame[name] = (len(gt_xy), scores, matched)
            statistics.append(frame)
        return statistics

    def metrics_of_frames(self, statistics: list, indices: Sequence[int]) -> Dict[str, float]:
        """:meth:`compute_metrics` of the frames ``indices`` (repeats allowed), from
        :meth:`frame_statistics`; equal to nuscenes-devkit's on the same frames."""
        result = {}
        for name in self.dataset_meta['classes']:
            gt_count = sum(statistics[i][name][0] for i in indices)
            if gt_count == 0:
                continue
            scores = np.concatenate([statistics[i][name][1] for i in indices])
            matched = np.concatenate([statistics[i][name][2] for i in indices], axis=1)
            order = np.lexsort((np.arange(len(scores)), scores))[::-1]
            result[f'AP_{name}'] = 100.0 * float(
                np.mean([_average_precision(hits[order], gt_count) for hits in matched]))
        aps = list(result.values())
        result['mAP'] = float(np.mean(aps)) if aps else 0.0
        return result


def _gravity_boxes(boxes) -> np.ndarray:
    """(N, 9) ``[x, y, z_gravity, l, w, h, yaw, vx, vy]`` from mmdet3d LiDAR boxes."""
    tensor = boxes.tensor.detach().cpu().numpy()
    centers = boxes.gravity_center.detach().cpu().numpy()
    velocity = tensor[:, 7:9] if tensor.shape[1] >= 9 else np.zeros((len(tensor), 2))
    return np.concatenate([centers, tensor[:, 3:7], velocity], axis=1)


def _greedy_match(pred_xy: np.ndarray, gt_xy: np.ndarray, order: np.ndarray,
                  threshold: float) -> np.ndarray:
    """Whether each prediction (visited in ``order``) takes the nearest free ground-truth box
    within ``threshold`` metres (BEV centre distance), as nuscenes-devkit's ``accumulate``."""
    matched = np.zeros(len(pred_xy), bool)
    free = np.ones(len(gt_xy), bool)
    for index in order:
        if not free.any():
            break
        distances = np.where(free, np.linalg.norm(gt_xy - pred_xy[index], axis=1), np.inf)
        nearest = int(np.argmin(distances))
        if distances[nearest] < threshold:
            matched[index], free[nearest] = True, False
    return matched


def _average_precision(hits: np.ndarray, gt_count: int, min_recall: float = 0.1,
                       min_precision: float = 0.1) -> float:
    """nuscenes-devkit's ``calc_ap(accumulate(...))`` from the match flags in score order."""
    if not hits.any():
        return 0.0
    true_positives = np.cumsum(hits).astype(float)
    false_positives = np.cumsum(~hits).astype(float)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / float(gt_count)
    precision = np.interp(np.linspace(0, 1, 101), recall, precision, right=0)
    precision = precision[round(100 * min_recall) + 1:] - min_precision
    precision[precision < 0] = 0
    return float(np.mean(precision)) / (1.0 - min_precision)
