"""Layer sensitivity from a config: a per-layer report (CSV + PNG) and a greedy skip list.

Under ``torch.distributed`` every rank calibrates as one process would (on all the calibration
batches: a fraction of the time the evaluations take) and the ranks share the per-layer
evaluations, each on the whole evaluation set, so the report and skip list are those of one
process, whatever the batch composition does to floating point.
"""
import os.path as osp
from dataclasses import dataclass
from itertools import islice
from typing import Optional, Sequence, Union

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.evaluator import Evaluator

from quantization import (evaluate_model, greedy_skip_search, layer_sensitivity,
                          plot_sensitivity, save_sensitivity_csv)
from quantization.fileio import check_output_file
from quantization.markdown import markdown_table
from quantization.sensitivity import SensitivityReport, SkipSearchResult
from quantization.toggle import match_quantizers
from .adapter import ModelAdapter
from .launcher import init_launcher
from .inputs import load_inputs
from .ptq import calibrate, check_methods
from .user_input import check_positive


@dataclass
class SensitivityResult:
    """The report, the skip search, the files written and ``frames``: the test samples each
    figure was measured on."""
    report: SensitivityReport
    search: SkipSearchResult
    csv: str
    png: str
    frames: int
    calib_batches: int
    budget: float
    metric_key: str

    def table(self, top: int = 10) -> str:
        return markdown_table(
            ('rank', 'layer', 'only this layer INT8', 'loss', 'all but this layer', 'gain'),
            [(rank, row.layer, f'{row.only_quantized:.2f}', f'{row.delta_only:.2f}',
              f'{row.all_but:.2f}', f'{row.gain_all_but:.2f}')
             for rank, row in enumerate(self.report.top(top), 1)], 'rlrrrr')


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
                launcher: str = 'none') -> SensitivityResult:
    """Every quantizable layer alone and left out (``2 * layers + 2`` evaluations on the first
    ``eval_batches`` test batches, default all), then the shortest skip list within ``budget``
    metric points of float. Writes ``output`` (CSV) and its PNG on rank 0."""
    method = check_methods([method or adapter.default_method])[0]
    check_positive({'calib_batches': calib_batches, 'eval_batches': eval_batches},
                   'calib_batches', 'eval_batches')
    check_output_file(output, '--output')
    check_output_file(png_path(output), '--output')
    init_launcher(launcher)
    inputs = load_inputs(config, checkpoint, adapter, (), calib_split, layers or (),
                         cfg_options, device, whole_data=True)
    model, loader = inputs.model, inputs.test_loader
    seen = calibrate(inputs, calib_batches, method, share_ranks=False)
    batches = list(islice(loader, eval_batches)) if eval_batches else loader
    frames = (sum(len(batch['data_samples']) for batch in batches)
              if eval_batches else len(loader.dataset))

    def metric(candidate) -> float:
        evaluator = Evaluator(inputs.cfg.test_evaluator)
        evaluator.dataset_meta = loader.dataset.metainfo
        return evaluate_model(candidate, batches, evaluator, frames,
                              gather=False)[adapter.metric_key]

    names = None
    if layers:
        names = sorted({name.rpartition('.')[0] for name in match_quantizers(model, layers)})
    report = layer_sensitivity(model, metric, names, progress=is_main_process())
    search = greedy_skip_search(model, metric, [r.layer for r in report.layers], budget,
                                report.float_metric)
    result = SensitivityResult(report, search, output, png_path(output), frames, seen, budget,
                               adapter.metric_key)
    if is_main_process():
        save_sensitivity_csv(report, output)
        plot_sensitivity(report, result.png, f'{adapter.metric_key} ({frames} frames)')
    return result
