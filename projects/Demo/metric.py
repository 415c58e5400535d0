"""Top-1 accuracy of DemoNet on SyntheticShapes, in percent."""
from typing import Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


@METRICS.register_module()
class ShapeAccuracy(BaseMetric):
    """Top-1 accuracy (%) of the class logits against the batch labels; one result per image
    (whether it was right), so results can be drawn per image."""

    default_prefix = 'shapes'

    def process(self, data_batch: dict, data_samples: Sequence[torch.Tensor]):
        labels = torch.as_tensor(data_batch['labels']).cpu()
        predictions = torch.stack([logits.detach().cpu() for logits in data_samples]).argmax(1)
        self.results.extend((predictions == labels).tolist())

    def compute_metrics(self, results: list) -> dict:
        return {'accuracy': 100.0 * sum(results) / max(len(results), 1)}
