"""PTQ from a config: float and INT8 metrics on the test split, one checkpoint per amax method."""
import logging
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.runner import set_random_seed

from quantization import (CalibrationManager, named_quantizers, quantize_and_calibrate,
                          save_quantized_checkpoint)
from quantization.adaround import adaround as adaround_weights
from quantization.bias_correction import correct_bias, layer_biases, restore_biases
from quantization.bootstrap import DEFAULT_ROUNDS, BootstrapResult, bootstrap
from quantization.descriptor import AMAX_METHODS
from quantization.errors import UserError
from quantization.evaluation import FrameResults, evaluate_frames
from quantization.fileio import check_output_file
from quantization.method_choice import MethodChoice, choose_amax_methods
from quantization.range_learning import RangeLearningResult, learn_ranges
from .adapter import ModelAdapter
from .launcher import init_launcher
from .inputs import QuantInputs, load_inputs
from .results import Rows, metric_keys, metrics_table
from .user_input import check_non_negative, check_positive


#: fractions k / AMAX_GRID of max's amax that the per-layer search tries besides the methods'
AMAX_GRID = 20
#: Adam steps of ``--learn-ranges`` unless told (about 4 per second for the small models on 2
#: cores)
RANGE_STEPS = 600


@dataclass
class PTQResult:
    """``rows``: ``[('float', metrics), ('PTQ (method)', metrics), ...]``; ``checkpoints``: the
    file of each method; ``calib_batches``: batches seen (all ranks); ``intervals``: bootstrap
    intervals of the rows' figures and of each row minus float (None when not drawn)."""
    rows: Rows
    checkpoints: Dict[str, str]
    calib_batches: int
    skip_layers: List[str]
    table_prefix: str = ''
    amax: Dict[str, object] = field(default_factory=dict, repr=False)  # the last method's
    intervals: Optional[BootstrapResult] = None
    metric_key: Optional[str] = None
    amax_choices: List[MethodChoice] = field(default_factory=list)  # of --per-layer-amax
    learned_ranges: Optional[RangeLearningResult] = None  # of --learn-ranges

    def table(self) -> str:
        return metrics_table(self.rows, metric_keys(self.rows[0][1], self.table_prefix),
                             self.intervals, self.metric_key)


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


def evaluate(inputs: QuantInputs) -> Tuple[dict, List[FrameResults]]:
    """The test metrics of ``inputs.model`` over every rank's shard of the test set, and the
    per-frame results behind them (on the main process)."""
    return evaluate_frames(inputs.model, inputs.test_loader, inputs.cfg.test_evaluator,
                           progress=is_main_process())


def draw_intervals(evaluations: Dict[str, List[FrameResults]], keys: Sequence[str],
                   rounds: int) -> Optional[BootstrapResult]:
    """Bootstrap intervals of ``keys`` and of every row minus the first, on the main process
    (None elsewhere, for ``rounds=0`` and for a test set of one frame)."""
    if rounds == 0 or not is_main_process():
        return None
    frames = len(next(iter(evaluations.values()))[0].results)
    if frames < 2:
        print_log(f'no bootstrap intervals: the test set has {frames} frame', logger='current',
                  level=logging.WARNING)
        return None
    return bootstrap(evaluations, keys, reference=next(iter(evaluations)), rounds=rounds)


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


def choose_amax(inputs: QuantInputs, adapter: ModelAdapter, batches: int,
                sequential: bool = False) -> List[MethodChoice]:
    """Each layer's input amax chosen on ``batches`` calibration batches, after :func:`calibrate`:
    among the methods' and :data:`AMAX_GRID` fractions of max's, by the layer's output error
    weighted by the adapter's importance map (but for its ``unweighted_layers``); ``sequential``:
    on the quantized model's inputs (:func:`choose_amax_methods`)."""
    return choose_amax_methods(inputs.model, inputs.calib_loader, batches,
                               importance_fn=adapter.importance, grid=AMAX_GRID,
                               unweighted=adapter.unweighted_layers, sequential=sequential)


def correct_and_learn_ranges(inputs: QuantInputs, adapter: ModelAdapter, calib_batches: int,
                             bias_correction: bool, range_batches: int,
                             range_steps: int = RANGE_STEPS) -> Optional[RangeLearningResult]:
    """The last steps of PTQ, in this order: the biases corrected on ``calib_batches`` (when
    asked), then, for ``range_batches`` > 0, every activation amax trained for ``range_steps``
    on that many calibration batches so that the adapter's ``output_module`` matches the float
    model's (:func:`learn_ranges`; None without). Seeded, so augmented batches are the same in
    every run. Corrected after the ranges, each layer's bias undoes what they learned together
    (SceneSeg: 90.99 mIoU without, 46.82 with the correction after)."""
    if bias_correction:
        correct_biases(inputs, calib_batches)
    if not range_batches:
        return None
    set_random_seed(0)
    result = learn_ranges(inputs.model, inputs.calib_loader, range_batches,
                          adapter.output_module, range_steps,
                          distance_fn=adapter.output_distance, progress=is_main_process())
    print_log(f'learned ranges on {result.batches} batches, {range_steps} steps: distance to '
              f'float {result.loss_before:.4g} -> {result.loss_after:.4g}'
              f'{"" if result.kept else " (not lower: calibrated ranges kept)"}',
              logger='current')
    return result


def check_range_learning(adapter: ModelAdapter, batches: int, steps: int) -> None:
    """``--learn-ranges`` / ``--range-steps``, before any heavy work."""
    check_non_negative({'learn_ranges': batches}, 'learn_ranges')
    check_positive({'range_steps': steps}, 'range_steps')
    if batches and adapter.output_module is None:
        raise UserError(f'--learn-ranges: {adapter.name} names no output module to match')


def correct_biases(inputs: QuantInputs, calib_batches: int) -> None:
    """Bias correction of ``inputs.model`` on ``calib_batches`` calibration batches, seeded so
    augmented batches are the same in every run."""
    set_random_seed(0)
    correct_bias(inputs.model, inputs.calib_loader, calib_batches)


def calibration_meta(checkpoint: str, inputs: QuantInputs, seen: int, calib_batches: int,
                     method: str, calib_split: str, bias_correction: bool, adaround: int,
                     choices: Sequence[MethodChoice],
                     ranges: Optional[RangeLearningResult] = None) -> dict:
    """A PTQ checkpoint's ``meta`` besides the recipe: the float checkpoint it came from and the
    calibration done (batches seen and asked for, method, split, algorithms, per-layer amax)."""
    return {
        'float_checkpoint': checkpoint,
        'calibration': dict(batches=seen, requested=calib_batches, method=method,
                            split=calib_split, equalize=inputs.recipe.equalize,
                            bias_correction=bias_correction, adaround_batches=adaround,
                            per_layer_amax={c.layer: c.method for c in choices},
                            learned_ranges=None if ranges is None else dict(
                                batches=ranges.batches, steps=ranges.steps, kept=ranges.kept,
                                distance_before=ranges.loss_before,
                                distance_after=ranges.loss_after))
    }


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
        launcher: str = 'none',
        bootstrap_rounds: int = DEFAULT_ROUNDS,
        equalize: Optional[bool] = None,
        bias_correction: Optional[bool] = None,
        adaround: int = 0,
        per_layer_amax: int = 0,
        learn_ranges: int = 0,
        range_steps: int = RANGE_STEPS) -> PTQResult:
    """Calibrate the float model of ``config`` + ``checkpoint`` and save one quantized checkpoint
    per amax method (one calibration pass for all); every figure gets a bootstrap interval over
    the test frames (``bootstrap_rounds`` draws, 0: none). Under ``torch.distributed`` the ranks
    share calibration and evaluation; rank 0 writes the files.

    ``equalize``: cross-layer equalization before calibration (the recipe's ``equalize``);
    ``bias_correction``: empirical bias correction of every method's model on the calibration
    batches. None keeps the recipe's / adapter's default. ``adaround``: the weights' rounding
    learned on this many calibration batches (0: nearest rounding), once, with the first method's
    activation ranges (the other methods share those weights). ``per_layer_amax``: each layer's
    input amax searched on this many calibration batches (0: the method's) among the methods'
    and :data:`AMAX_GRID` fractions of max's, by its output error weighted by the adapter's
    ``importance``; needs one method (for the quantizers it does not choose). ``learn_ranges``:
    last (after AdaRound and bias correction, :func:`correct_and_learn_ranges`), every
    activation amax trained for ``range_steps`` on this many calibration batches, so the
    adapter's ``output_module`` matches the float model's; one method too."""
    methods = check_methods(methods or [adapter.method_for('ptq')])
    check_positive({'calib_batches': calib_batches}, 'calib_batches')
    check_non_negative({'bootstrap_rounds': bootstrap_rounds, 'adaround': adaround,
                        'per_layer_amax': per_layer_amax},
                       'bootstrap_rounds', 'adaround', 'per_layer_amax')
    check_range_learning(adapter, learn_ranges, range_steps)
    for option, value in (('--per-layer-amax', per_layer_amax), ('--learn-ranges', learn_ranges)):
        if value and len(methods) > 1:
            raise UserError(f'{option} sets each layer\'s amax: give one --method, not '
                            f'{" ".join(methods)}')
    for method in methods:
        check_output_file(method_output(output, method, methods), '--output')
    init_launcher(launcher)
    inputs = load_inputs(config, checkpoint, adapter, skip_layers, calib_split,
                         cfg_options=cfg_options, device=device)
    if equalize is not None:
        inputs.recipe.equalize = equalize
    if bias_correction is None:
        bias_correction = adapter.bias_correction_for('ptq')
    metrics, frames = evaluate(inputs)
    rows, evaluations = [('float', metrics)], {'float': frames}
    seen = calibrate(inputs, calib_batches, methods[0])
    choices = choose_amax(inputs, adapter, per_layer_amax) if per_layer_amax else []
    if adaround:
        set_random_seed(0)
        adaround_weights(inputs.model, inputs.calib_loader, adaround, progress=is_main_process())
    ranges = None
    if learn_ranges:
        ranges = correct_and_learn_ranges(inputs, adapter, calib_batches, bias_correction,
                                          learn_ranges, range_steps)
    correct_each = bias_correction and not learn_ranges  # else once, before the ranges
    manager = CalibrationManager(inputs.model, progress=False) if len(methods) > 1 else None
    biases = layer_biases(inputs.model) if correct_each else None
    checkpoints = {}
    for method in methods:
        if manager is not None and method != methods[0]:
            manager.compute_amax(method)  # the histograms of the one calibration pass
        if correct_each:
            restore_biases(inputs.model, biases)  # each method corrects the calibrated biases
            correct_biases(inputs, calib_batches)
        name = f'PTQ ({method})'
        metrics, evaluations[name] = evaluate(inputs)
        rows.append((name, metrics))
        checkpoints[method] = method_output(output, method, methods)
        if is_main_process():
            save_quantized_checkpoint(
                inputs.model, checkpoints[method], inputs.recipe,
                meta=calibration_meta(checkpoint, inputs, seen, calib_batches, method,
                                      calib_split, bias_correction, adaround, choices,
                                      ranges))
    intervals = draw_intervals(evaluations, metric_keys(rows[0][1], adapter.table_prefix),
                               bootstrap_rounds)
    return PTQResult(rows, checkpoints, seen, list(inputs.recipe.skip_layers), adapter.table_prefix,
                     amax_of(inputs.model), intervals, adapter.metric_key, choices, ranges)
