"""Layer sensitivity from a config: a per-layer report (CSV + PNG) and a greedy skip list.

Under ``torch.distributed`` every rank calibrates as one process would (on all the calibration
batches: a fraction of the time the evaluations take) and the ranks share the per-layer
evaluations, each on the whole evaluation set, so the report and skip list are those of one
process, whatever the batch composition does to floating point.
"""
import os.path as osp
from dataclasses import dataclass
from itertools import islice
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.evaluator import Evaluator

from quantization import (greedy_skip_search, layer_sensitivity, plot_sensitivity,
                          save_sensitivity_csv)
from quantization.bootstrap import DEFAULT_ROUNDS, BootstrapResult, Interval, bootstrap
from quantization.evaluation import FrameResults, evaluate_frames
from quantization.fileio import check_output_file
from quantization.markdown import markdown_table
from quantization.sensitivity import SensitivityReport, SkipSearchResult
from quantization.toggle import match_quantizers
from .adapter import ModelAdapter
from .launcher import init_launcher
from .inputs import load_inputs
from .ptq import calibrate, check_methods, choose_amax
from .user_input import check_non_negative, check_positive

#: Layers whose loss and gain get bootstrap intervals (the ones the table shows).
INTERVAL_LAYERS = 10


class FrameScore(float):
    """A metric value that keeps the per-frame results it was computed from, so the report's
    figures can get bootstrap intervals; arithmetic on it gives plain floats."""

    def __new__(cls, value: float, frames: Optional[List[FrameResults]] = None):
        score = super().__new__(cls, value)
        score.frames = frames
        return score

    def __getnewargs__(self):
        return float(self), self.frames


@dataclass
class SensitivityResult:
    """The report, the skip search, the files written and ``frames``: the test samples each
    figure was measured on; ``headline``: float and all-INT8 with bootstrap intervals (INT8
    minus float paired); ``intervals``: per shown layer, the loss and the gain with theirs."""
    report: SensitivityReport
    search: SkipSearchResult
    csv: str
    png: str
    frames: int
    calib_batches: int
    budget: float
    metric_key: str
    headline: Optional[BootstrapResult] = None
    intervals: Optional[Dict[str, Tuple[Interval, Interval]]] = None

    def table(self, top: int = INTERVAL_LAYERS) -> str:
        intervals = self.intervals or {}

        def figure(value: float, layer: str, which: int) -> str:
            return str(intervals[layer][which]) if layer in intervals else f'{value:.2f}'

        return markdown_table(
            ('rank', 'layer', 'only this layer INT8', 'loss [95%]', 'all but this layer',
             'gain [95%]'),
            [(rank, row.layer, f'{row.only_quantized:.2f}', figure(row.delta_only, row.layer, 0),
              f'{row.all_but:.2f}', figure(row.gain_all_but, row.layer, 1))
             for rank, row in enumerate(self.report.top(top), 1)], 'rlrrrr')


def _intervals(report: SensitivityReport, key: str,
               rounds: int) -> Tuple[BootstrapResult, Dict[str, Tuple[Interval, Interval]]]:
    """Float and all-INT8 with intervals, and per shown layer the loss (float minus only this
    layer INT8) and the gain (all but this layer INT8 minus all INT8), all paired on one set of
    draws of frames."""
    shown = report.top(INTERVAL_LAYERS)
    evaluations = {'float': report.float_metric.frames, 'int8': report.quant_metric.frames}
    versus = {}
    for row in shown:
        evaluations[f'only {row.layer}'] = row.only_quantized.frames
        evaluations[f'all but {row.layer}'] = row.all_but.frames
        versus[f'all but {row.layer}'] = 'int8'
    result = bootstrap(evaluations, [key], 'float', rounds, versus=versus)
    intervals = {row.layer: (-result.difference[f'only {row.layer}'][key],
                             result.difference[f'all but {row.layer}'][key]) for row in shown}
    return result, intervals


def png_path(output: str) -> str:
    return osp.splitext(output)[0] + '.png'


def sensitivity(config: Union[str, Config],
                checkpoint: str,
                adapter: ModelAdapter,
                output: str,
                calib_batches: int = 100,
                method: Optional[str] = None,
                budget: float = 0.3,
                layers: Optional[Sequence[str]] = None,
                eval_batches: Optional[int] = None,
                calib_split: str = 'train',
                cfg_options: Optional[dict] = None,
                device: Optional[str] = None,
                launcher: str = 'none',
                bootstrap_rounds: int = DEFAULT_ROUNDS,
                per_layer_amax: int = 0) -> SensitivityResult:
    """Every quantizable layer alone and left out (``2 * layers + 2`` evaluations on the first
    ``eval_batches`` test batches, default all), then the shortest skip list within ``budget``
    metric points of float. Writes ``output`` (CSV) and its PNG on rank 0. Float, all-INT8 and
    the loss and gain of the first ``INTERVAL_LAYERS`` layers get bootstrap intervals
    (``bootstrap_rounds`` draws, 0: none; on rank 0). ``per_layer_amax``: each layer's input
    amax chosen on this many calibration batches, as ``ptq`` does (0: ``method``'s)."""
    method = check_methods([method or adapter.method_for('ptq')])[0]
    check_positive({'calib_batches': calib_batches, 'eval_batches': eval_batches},
                   'calib_batches', 'eval_batches')
    check_non_negative({'bootstrap_rounds': bootstrap_rounds, 'per_layer_amax': per_layer_amax},
                       'bootstrap_rounds', 'per_layer_amax')
    check_output_file(output, '--output')
    check_output_file(png_path(output), '--output')
    init_launcher(launcher)
    inputs = load_inputs(config, checkpoint, adapter, (), calib_split, layers or (),
                         cfg_options, device, whole_data=True)
    model, loader = inputs.model, inputs.test_loader
    seen = calibrate(inputs, calib_batches, method, share_ranks=False)
    if per_layer_amax:
        choose_amax(inputs, adapter, per_layer_amax)
    batches = list(islice(loader, eval_batches)) if eval_batches else loader
    frames = (sum(len(batch['data_samples']) for batch in batches)
              if eval_batches else len(loader.dataset))

    def metric(candidate) -> FrameScore:
        evaluator = Evaluator(inputs.cfg.test_evaluator)
        evaluator.dataset_meta = loader.dataset.metainfo
        metrics, per_frame = evaluate_frames(candidate, batches, evaluator, frames, gather=False)
        return FrameScore(metrics[adapter.metric_key], per_frame)

    names = None
    if layers:
        names = sorted({name.rpartition('.')[0] for name in match_quantizers(model, layers)})
    report = layer_sensitivity(model, metric, names, progress=is_main_process())
    search = greedy_skip_search(model, metric, [r.layer for r in report.layers], budget,
                                report.float_metric)
    result = SensitivityResult(report, search, output, png_path(output), frames, seen, budget,
                               adapter.metric_key)
    if is_main_process() and bootstrap_rounds and frames > 1:
        result.headline, result.intervals = _intervals(report, adapter.metric_key,
                                                       bootstrap_rounds)
    if is_main_process():
        save_sensitivity_csv(report, output)
        plot_sensitivity(report, result.png, f'{adapter.metric_key} ({frames} frames)')
    return result
