"""Layer sensitivity: how much each quantized layer costs in the task metric.

``evaluate(model) -> float`` is the task metric (higher is better: mAP, mIoU, accuracy). The
model must be calibrated; quantizer enable flags are restored after every analysis.
"""
import csv
import logging
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence

from torch import nn
from tqdm import tqdm

from .fileio import atomic_output
from .toggle import (enabled_state, quant_layer_names, restore_enabled_state, set_all_quantizers)

logger = logging.getLogger(__name__)
Evaluate = Callable[[nn.Module], float]


@dataclass
class LayerSensitivity:
    """Metric of one layer, in the metric's units.

    ``only_quantized``: only this layer quantized; ``all_but``: every layer but this one.
    ``delta_only = float_metric - only_quantized`` (the loss this layer causes alone) and
    ``gain_all_but = all_but - quant_metric`` (what leaving it in float recovers).
    """

    layer: str
    only_quantized: float
    all_but: float
    delta_only: float
    gain_all_but: float


@dataclass
class SensitivityReport:
    float_metric: float
    quant_metric: float
    layers: List[LayerSensitivity]  # most sensitive first

    def top(self, count: int = 10) -> List[LayerSensitivity]:
        return self.layers[:count]


def layer_sensitivity(model: nn.Module,
                      evaluate: Evaluate,
                      layers: Optional[Sequence[str]] = None,
                      progress: bool = True) -> SensitivityReport:
    """Evaluate every quantized layer alone and every layer left out.

    Costs ``2 * len(layers) + 2`` evaluations. Layers are ranked by ``delta_only``, then by
    ``gain_all_but``, most sensitive first.
    """
    snapshot = enabled_state(model)
    layers = list(layers) if layers is not None else quant_layer_names(model)
    if not layers:
        raise ValueError(f'{type(model).__name__} has no quantized layer to analyse')
    try:
        set_all_quantizers(model, False)
        float_metric = evaluate(model)
        set_all_quantizers(model, True)
        quant_metric = evaluate(model)
        rows = []
        for layer in tqdm(layers, desc='Sensitivity', disable=not progress):
            set_all_quantizers(model, False)
            set_all_quantizers(model, True, [layer])
            only = evaluate(model)
            set_all_quantizers(model, True)
            set_all_quantizers(model, False, [layer])
            all_but = evaluate(model)
            rows.append(
                LayerSensitivity(layer, only, all_but, float_metric - only, all_but - quant_metric))
            logger.info('%s: only %.4f, all but %.4f', layer, only, all_but)
    finally:
        restore_enabled_state(model, snapshot)
    rows.sort(key=lambda row: (row.delta_only, row.gain_all_but), reverse=True)
    return SensitivityReport(float_metric, quant_metric, rows)


@dataclass
class SkipSearchResult:
    skip_layers: List[str]
    metric: float
    float_metric: float
    trace: List[dict]  # one entry per evaluation: skipped count, last layer added, metric


def greedy_skip_search(model: nn.Module, evaluate: Evaluate, ranking: Sequence[str], budget: float,
                       float_metric: float) -> SkipSearchResult:
    """Leave the most sensitive layers in float, one at a time in ``ranking`` order, until the
    metric is within ``budget`` (metric units) of ``float_metric``.

    Returns the shortest prefix of ``ranking`` that meets the budget (all of it if none does,
    with a warning). The model's enable flags are restored afterwards.
    """
    if budget < 0:
        raise ValueError(f'budget must be >= 0 metric points, got {budget}')
    snapshot = enabled_state(model)
    trace = []
    try:
        skipped: List[str] = []
        for next_layer in [None, *ranking]:
            if next_layer is not None:
                skipped.append(next_layer)
            set_all_quantizers(model, True)
            if skipped:
                set_all_quantizers(model, False, skipped)
            metric = evaluate(model)
            trace.append({'skipped': len(skipped), 'layer': next_layer or '', 'metric': metric})
            if float_metric - metric <= budget:
                return SkipSearchResult(list(skipped), metric, float_metric, trace)
        logger.warning('no skip list meets the budget of %.4f; every ranked layer is left in float',
                       budget)
        return SkipSearchResult(list(skipped), metric, float_metric, trace)
    finally:
        restore_enabled_state(model, snapshot)


def save_sensitivity_csv(report: SensitivityReport, path: str):
    """CSV with one row per layer (most sensitive first); written atomically."""
    with atomic_output(path) as tmp_path, open(tmp_path, 'w', newline='') as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=['rank', *LayerSensitivity.__annotations__])
        writer.writeheader()
        for rank, row in enumerate(report.layers, 1):
            writer.writerow({'rank': rank, **asdict(row)})


def plot_sensitivity(report: SensitivityReport,
                     path: str,
                     metric_name: str = 'metric',
                     top: int = 30):
    """Horizontal bar chart of ``delta_only`` and ``gain_all_but`` per layer, as PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = report.layers[:top][::-1]
    height = max(3.0, 0.32 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(10, height))
    positions = range(len(rows))
    ax.barh([p + 0.2 for p in positions], [r.delta_only for r in rows],
            height=0.4,
            label='loss with only this layer quantized')
    ax.barh([p - 0.2 for p in positions], [r.gain_all_but for r in rows],
            height=0.4,
            label='gain when only this layer stays float')
    ax.set_yticks(list(positions))
    ax.set_yticklabels([r.layer for r in rows], fontsize=8)
    ax.axvline(0, color='black', linewidth=0.8)
    ax.set_xlabel(f'{metric_name} points')
    ax.set_title(f'Layer sensitivity (float {report.float_metric:.4f}, '
                 f'all INT8 {report.quant_metric:.4f})')
    ax.legend(loc='best', fontsize=8, framealpha=0.6)
    fig.tight_layout()
    try:
        with atomic_output(path, '.png') as tmp_path:
            fig.savefig(tmp_path, dpi=110)
    finally:
        plt.close(fig)
