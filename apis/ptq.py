"""PTQ from a config: float and INT8 metrics on the test split, one checkpoint per amax method."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.runner import set_random_seed

from quantization import (CalibrationManager, evaluate_model, named_quantizers,
                          quantize_and_calibrate, save_quantized_checkpoint)
from quantization.descriptor import AMAX_METHODS
from quantization.errors import UserError
from quantization.fileio import check_output_file
from .adapter import ModelAdapter
from .launcher import init_launcher
from .inputs import QuantInputs, load_inputs
from .results import Rows, metric_keys, metrics_table
from .user_input import check_positive


@dataclass
class PTQResult:
    """``rows``: ``[('float', metrics), ('PTQ (method)', metrics), ...]``; ``checkpoints``: the
    file of each method; ``calib_batches``: batches seen (all ranks)."""
    rows: Rows
    checkpoints: Dict[str, str]
    calib_batches: int
    skip_layers: List[str]
    table_prefix: str = ''
    amax: Dict[str, object] = field(default_factory=dict, repr=False)  # the last method's

    def table(self) -> str:
        return metrics_table(self.rows, metric_keys(self.rows[0][1], self.table_prefix))


def amax_of(model) -> Dict[str, object]:
    """Every calibrated quantizer's amax (CPU copies), by quantizer name."""
    return {
        name: quantizer.amax.detach().cpu().clone()
        for name, quantizer in named_quantizers(model) if quantizer.amax is not None
    }


def method_output(output: str, method: str, methods: Sequence[str]) -> str:
    """``OUT`` for one method; ``OUT`` with ``_<method>`` before the extension for several."""
    if len(methods) == 1:
        return output
    stem, extension = osp.splitext(output)
    return f'{stem}_{method}{extension or ".pth"}'


def check_methods(methods: Sequence[str]) -> List[str]:
    unknown = [m for m in methods if m not in AMAX_METHODS]
    if unknown or not methods:
        raise UserError(f'--method {" ".join(unknown)}: choose from {", ".join(AMAX_METHODS)}')
    return list(dict.fromkeys(methods))


def evaluate(inputs: QuantInputs) -> dict:
    """The test metrics of ``inputs.model`` over every rank's shard of the test set."""
    return evaluate_model(inputs.model, inputs.test_loader, inputs.cfg.test_evaluator,
                          progress=is_main_process())


def calibrate(inputs: QuantInputs, calib_batches: int, method: str,
              share_ranks: bool = True) -> int:
    """Apply the recipe, collect statistics, load amax by ``method``; returns the batches seen
    (all ranks when shared). Seeded, so augmented calibration batches are the same in every
    run."""
    set_random_seed(0)
    counts = quantize_and_calibrate(inputs.model, inputs.recipe, inputs.calib_loader,
                                    calib_batches, method, progress=is_main_process(),
                                    share_ranks=share_ranks)
    print_log(f'recipe applied: {counts}', logger='current')
    return counts['batches']


def ptq(config: Union[str, Config],
        checkpoint: str,
        adapter: ModelAdapter,
        output: str,
        methods: Optional[Sequence[str]] = None,
        calib_batches: int = 100,
        skip_layers: Optional[Sequence[str]] = None,
        calib_split: str = 'train',
        cfg_options: Optional[dict] = None,
        device: Optional[str] = None,
        launcher: str = 'none') -> PTQResult:
    """Calibrate the float model of ``config`` + ``checkpoint`` and save one quantized checkpoint
    per amax method (one calibration pass for all). Under ``torch.distributed`` the ranks share
    calibration and evaluation; rank 0 writes the files."""
    methods = check_methods(methods or [adapter.default_method])
    check_positive({'calib_batches': calib_batches}, 'calib_batches')
    for method in methods:
        check_output_file(method_output(output, method, methods), '--output')
    init_launcher(launcher)
    inputs = load_inputs(config, checkpoint, adapter, skip_layers, calib_split,
                         cfg_options=cfg_options, device=device)
    rows = [('float', evaluate(inputs))]
    seen = calibrate(inputs, calib_batches, methods[0])
    manager = CalibrationManager(inputs.model, progress=False) if len(methods) > 1 else None
    checkpoints = {}
    for method in methods:
        if manager is not None and method != methods[0]:
            manager.compute_amax(method)  # the histograms of the one calibration pass
        rows.append((f'PTQ ({method})', evaluate(inputs)))
        checkpoints[method] = method_output(output, method, methods)
        if is_main_process():
            save_quantized_checkpoint(
                inputs.model,
                checkpoints[method],
                inputs.recipe,
                meta={
                    'float_checkpoint': checkpoint,
                    'calibration': dict(batches=seen, requested=calib_batches, method=method,
                                        split=calib_split)
                })
    return PTQResult(rows, checkpoints, seen, list(inputs.recipe.skip_layers), adapter.table_prefix,
                     amax_of(inputs.model))
