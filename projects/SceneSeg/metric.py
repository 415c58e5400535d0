"""SceneSeg's IoU exactly as upstream reports it, plus dataset-level IoU beside it.

Per image, on the one-hot argmax prediction and the one-hot ground truth:
``IoU_c = (|pred_c & gt_c| + 1) / (|pred_c | gt_c| + 1)`` for each class and "overall" the same
over all three channels at once; averaged over the images of each dataset and over all images
("pooled"); "class_average" is the mean of the three class values. Dataset-level IoU sums the
intersections and unions over a set first (``dataset_level_*``). Pixels whose mask colour is not
in the table (255) are left out of both prediction and ground truth. Values in %.
"""
from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from .data.layout import CLASSES, IGNORE_INDEX


def intersections_unions(pred: np.ndarray, gt: np.ndarray, num_classes: int = 3):
    """(num_classes,) pixel counts of ``pred_c & gt_c`` and ``pred_c | gt_c`` (ignored pixels
    of ``gt`` excluded)."""
    valid = gt != IGNORE_INDEX
    pred, gt = pred[valid], gt[valid]
    inter = np.bincount(gt[pred == gt], minlength=num_classes)[:num_classes]
    pred_count = np.bincount(pred, minlength=num_classes)[:num_classes]
    gt_count = np.bincount(gt, minlength=num_classes)[:num_classes]
    return inter, pred_count + gt_count - inter


def image_scores(inter: np.ndarray, union: np.ndarray) -> Dict[str, float]:
    """Upstream's +1-smoothed per-image IoU per class, overall and class average (fractions)."""
    scores = {name: (inter[i] + 1) / (union[i] + 1) for i, name in enumerate(CLASSES)}
    scores['overall'] = (inter.sum() + 1) / (union.sum() + 1)
    scores['class_average'] = float(np.mean([scores[name] for name in CLASSES]))
    return scores


def summarise(rows: List[dict]) -> Dict[str, float]:
    """Means of per-image scores, and dataset-level IoU, in %, for one set of images."""
    keys = list(CLASSES) + ['overall', 'class_average']
    result = {k: 100.0 * float(np.mean([r['scores'][k] for r in rows])) for k in keys}
    inter = np.sum([r['inter'] for r in rows], axis=0)
    union = np.sum([r['union'] for r in rows], axis=0)
    level = inter / np.maximum(union, 1)
    for i, name in enumerate(CLASSES):
        result[f'dataset_level_{name}'] = 100.0 * float(level[i])
    result['dataset_level_mIoU'] = 100.0 * float(level.mean())
    return result


@METRICS.register_module()
class SceneSegIoU(BaseMetric):
    """Keys ``<dataset>/<score>`` and ``pooled/<score>`` (e.g. ``sceneseg/pooled/class_average``).

    Samples (``BaseDataElement`` or dict) hold ``gt_mask`` and ``pred_mask`` ((H, W) class
    indices) and the ``dataset`` name; (3, H, W) logits in place of a sample (an exported model's
    output) take the rest from ``data_batch``.
    """

    default_prefix = 'sceneseg'

    def process(self, data_batch, data_samples: Sequence):
        for index, sample in enumerate(data_samples):
            if isinstance(sample, torch.Tensor):
                pred, sample = sample.argmax(0), data_batch['data_samples'][index]
            else:
                pred = sample.get('pred_mask')
            pred = torch.as_tensor(pred).cpu().numpy().astype(np.int64)
            gt = torch.as_tensor(sample.get('gt_mask')).cpu().numpy().astype(np.int64)
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {pred.shape} and mask {gt.shape} of '
                                 f"{sample.get('image_path', 'an image')} differ in size")
            inter, union = intersections_unions(pred, gt)
            self.results.append({
                'dataset': sample.get('dataset', 'all'),
                'inter': inter,
                'union': union,
                'scores': image_scores(inter, union)
            })

    def compute_metrics(self, results: list) -> Dict[str, float]:
        by_dataset = defaultdict(list)
        for row in results:
            by_dataset[row['dataset']].append(row)
        metrics = {}
        for name, rows in sorted(by_dataset.items()):
            metrics.update({f'{name}/{k}': v for k, v in summarise(rows).items()})
        metrics.update({f'pooled/{k}': v for k, v in summarise(results).items()})
        return metrics
