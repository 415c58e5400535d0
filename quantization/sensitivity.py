"""Layer sensitivity: how much each quantized layer costs in the task metric.

``evaluate(model) -> float`` is the task metric (higher is better: mAP, mIoU, accuracy). The
model must be calibrated; quantizer enable flags are restored after every analysis.
"""
import csv
import logging
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence

from mmengine.dist import get_dist_info
from torch import nn
from tqdm import tqdm

from .distributed import shared_map
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


def _variant_metric(model: nn.Module, evaluate: Evaluate, variant: tuple) -> float:
    """The metric with one quantization variant set: ``('float',)``, ``('int8',)``,
    ``('only', layer)``, ``('all_but', layer)`` or ``('skip', layers)``."""
    kind = variant[0]
    set_all_quantizers(model, kind not in ('float', 'only'))
    if kind == 'only':
        set_all_quantizers(model, True, [variant[1]])
    elif kind == 'all_but':
        set_all_quantizers(model, False, [variant[1]])
    elif kind == 'skip' and variant[1]:
        set_all_quantizers(model, False, list(variant[1]))
    return evaluate(model)


def _metrics_of(model: nn.Module, evaluate: Evaluate, variants: Sequence[tuple],
                progress: bool) -> List[float]:
    """The metric of every variant, shared over the distributed ranks (the same numbers as one
    process: each variant is evaluated whole on one rank); enable flags restored afterwards."""
    snapshot = enabled_state(model)
    bar = tqdm(total=len(variants), desc='Sensitivity', disable=not progress)

    def metric(variant):
        value = _variant_metric(model, evaluate, variant)
        bar.update(get_dist_info()[1])
        return value

    try:
        return shared_map(metric, variants)
    finally:
        bar.close()
        restore_enabled_state(model, snapshot)


def layer_sensitivity(model: nn.Module,
                      evaluate: Evaluate,
                      layers: Optional[Sequence[str]] = None,
                      progress: bool = True) -> SensitivityReport:
    """Evaluate every quantized layer alone and every layer left out.

    Costs ``2 * len(layers) + 2`` evaluations, dealt over the ranks under ``torch.distributed``
    (every rank must call it, with the same calibrated model; ``evaluate`` must not make
    collective calls). Layers are ranked by ``delta_only``, then by ``gain_all_but``, most
    sensitive first.
    """
    layers = list(layers) if layers is not None else quant_layer_names(model)
    if not layers:
        raise ValueError(f'{type(model).__name__} has no quantized layer to analyse')
    variants = [('float', ), ('int8', )]
    for layer in layers:
        variants += [('only', layer), ('all_but', layer)]
    float_metric, quant_metric, *per_layer = _metrics_of(model, evaluate, variants, progress)
    rows = []
    for index, layer in enumerate(layers):
        only, all_but = per_layer[2 * index], per_layer[2 * index + 1]
        rows.append(
            LayerSensitivity(layer, only, all_but, float_metric - only, all_but - quant_metric))
        logger.info('%s: only %.4f, all but %.4f', layer, only, all_but)
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
    with a warning). Under ``torch.distributed`` the ranks evaluate consecutive prefixes at once;
    the result and trace are those of one process. The model's enable flags are restored.
    """
    if budget < 0:
        raise ValueError(f'budget must be >= 0 metric points, got {budget}')
    world = get_dist_info()[1]
    trace = []
    for first in range(0, len(ranking) + 1, world):
        lengths = range(first, min(first + world, len(ranking) + 1))
        variants = [('skip', tuple(ranking[:length])) for length in lengths]
        for length, metric in zip(lengths, _metrics_of(model, evaluate, variants, False)):
            trace.append({
                'skipped': length,
                'layer': ranking[length - 1] if length else '',
                'metric': metric
            })
            if float_metric - metric <= budget:
                return SkipSearchResult(list(ranking[:length]), metric, float_metric, trace)
    logger.warning('no skip list meets the budget of %.4f; every ranked layer is left in float',
                   budget)
    return SkipSearchResult(list(ranking), metric, float_metric, trace)


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
