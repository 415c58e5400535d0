"""One CLI for every model: ``ptq``, ``sensitivity`` and ``qat`` from an MMEngine config.

A model plugs in with a :class:`ModelAdapter` (how to check the config builds the right model,
its recipe, the metric to report); ``tools/centerpoint_quantization.py`` is such a thin wrapper.
Bad input ends with one ``error: ...`` line and exit code 2, found before any heavy work (config,
checkpoint, skip patterns, data folders and output paths are checked first).
"""
import copy
import os.path as osp
from dataclasses import dataclass
from itertools import islice
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, set_random_seed
from torch import nn

from .calibration import CalibrationManager
from .checkpoint import load_checkpoint_file, load_state_dict_strict, save_quantized_checkpoint
from .descriptor import AMAX_METHODS
from .errors import ToolArgumentParser, UserError, run_tool
from .evaluation import evaluate_model
from .fileio import check_output_dir, check_output_file
from .ptq import quantize_and_calibrate
from .recipe import QuantRecipe
from .resume import resolve_start
from .sensitivity import (greedy_skip_search, layer_sensitivity, plot_sensitivity,
                          save_sensitivity_csv)
from .toggle import match_quantizers
from .user_input import check_input_file, check_positive, read_config


@dataclass
class ModelAdapter:
    """What the CLI needs to know about one model family.

    Args:
        name (str): Shown in messages, e.g. ``'CenterPoint'``.
        check_model (callable): ``fn(model, source)`` raising ValueError when the config does not
            build this kind of model.
        make_recipe (callable): ``fn(float_model, skip_layers) -> QuantRecipe``.
        metric_key (str): Evaluator key reported and used by sensitivity, e.g. ``'det/mAP'``.
        default_method (str): amax method when ``--method`` is not given.
        qat_optimizer (callable, optional): ``fn(cfg, lr, epochs, iters_per_epoch)`` setting the
            config's optimizer and schedule for QAT; None only sets the learning rate.
        table_prefix (str): Result tables show the metric keys starting with it (all: '').
    """
    name: str
    check_model: Callable[[nn.Module, str], None]
    make_recipe: Callable[[nn.Module, Sequence[str]], QuantRecipe]
    metric_key: str
    default_method: str = 'mse'
    qat_optimizer: Optional[Callable] = None
    table_prefix: str = ''  # result tables show the metric keys that start with it


def _parser(adapter: ModelAdapter) -> ToolArgumentParser:
    parser = ToolArgumentParser(description=f'{adapter.name} INT8 quantization')
    verbs = parser.add_subparsers(dest='verb', required=True)
    for verb, help_text in (('ptq', 'calibrate and save a quantized checkpoint'),
                            ('sensitivity', 'per-layer sensitivity and a skip list'),
                            ('qat', 'quantization-aware training with QATHook')):
        sub = verbs.add_parser(verb, help=help_text)
        sub.add_argument('--config', required=True)
        sub.add_argument('--checkpoint', required=True, help='float checkpoint')
        sub.add_argument('--calibrate-batches', type=int, default=100)
        if verb == 'ptq':
            sub.add_argument(
                '--method',
                nargs='+',
                choices=AMAX_METHODS,
                default=[adapter.default_method],
                help='amax method(s); several: one calibration pass, one checkpoint each '
                '(OUT with _<method> before the extension)')
        else:
            sub.add_argument('--method', choices=AMAX_METHODS, default=adapter.default_method)
        if verb != 'sensitivity':  # sensitivity analyses every layer
            sub.add_argument(
                '--skip-layers',
                nargs='*',
                default=None,
                help='layer patterns left in float (default: the recipe\'s list)')
        sub.add_argument('--calib-split', choices=['train', 'val'], default='train')
        sub.add_argument('--output', required=True)
        if verb == 'sensitivity':
            sub.add_argument(
                '--budget',
                type=float,
                default=0.3,
                help=f'{adapter.metric_key} points the skip list may lose')
            sub.add_argument(
                '--layers',
                nargs='*',
                default=None,
                help='analyse only layers matching these patterns')
            sub.add_argument(
                '--eval-batches',
                type=int,
                default=None,
                help='score each variant on the first N test batches (default: all)')
        if verb == 'qat':
            sub.add_argument('--epochs', type=int, default=2)
            sub.add_argument(
                '--lr',
                type=float,
                default=None,
                help='peak learning rate (default: 10x below the config\'s)')
            sub.add_argument('--resume', action='store_true')
    return parser


@dataclass
class _Inputs:
    """What every verb needs, checked before heavy work: the config, the float model with its
    weights, the recipe and the calibration / test loaders (their datasets already read)."""
    cfg: Config
    model: nn.Module
    recipe: QuantRecipe
    calib_loader: object
    test_loader: object


def _check_outputs(args, methods: Sequence[str] = ()):
    if args.verb == 'qat':
        check_output_dir(args.output, '--output')
    elif args.verb == 'sensitivity':
        check_output_file(args.output, '--output')
        check_output_file(osp.splitext(args.output)[0] + '.png', '--output')
    else:
        for method in methods:
            check_output_file(method_output(args.output, method, methods), '--output')


def _check_patterns(model: nn.Module, recipe: QuantRecipe, layer_patterns: Sequence[str]):
    """Apply ``recipe`` to a copy of ``model``: unknown ``--skip-layers`` / ``--layers`` patterns
    are reported now, not after the float evaluation."""
    probe = copy.deepcopy(model)
    try:
        recipe.apply(probe)
        if layer_patterns:
            match_quantizers(probe, layer_patterns)
    except KeyError as err:
        raise UserError(f'--skip-layers / --layers: {err.args[0]}') from err


def _load(args, adapter: ModelAdapter, default_skip: Sequence[str], methods=()) -> _Inputs:
    check_positive(args, 'calibrate_batches', 'eval_batches', 'epochs')
    cfg = read_config(args.config, 'config', required=('model', ))
    check_input_file(args.checkpoint, 'checkpoint')
    _check_outputs(args, methods)
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    adapter.check_model(model, f'config {args.config}')
    checkpoint = load_checkpoint_file(args.checkpoint)
    if checkpoint.get('meta', {}).get('quantization'):
        raise UserError(f'{args.checkpoint} is already quantized; pass the float checkpoint')
    load_state_dict_strict(model, checkpoint.get('state_dict', checkpoint), args.checkpoint)
    recipe = adapter.make_recipe(model, _skip(args, default_skip))
    _check_patterns(model, recipe, getattr(args, 'layers', None) or ())
    loader_key = 'train_dataloader' if args.calib_split == 'train' else 'val_dataloader'
    calib_loader = Runner.build_dataloader(cfg[loader_key], seed=0)
    test_loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    return _Inputs(cfg, model.eval(), recipe, calib_loader, test_loader)


def _evaluate(inputs: _Inputs, model: nn.Module) -> Dict[str, float]:
    return evaluate_model(model, inputs.test_loader, inputs.cfg.test_evaluator, progress=True)


def _calibrated(inputs: _Inputs, args, method: str) -> int:
    """Apply the recipe, collect calibration statistics, load amax by ``method``; returns the
    calibration batches actually seen."""
    set_random_seed(0)  # the same augmented calibration batches in every run
    counts = quantize_and_calibrate(inputs.model, inputs.recipe, inputs.calib_loader,
                                    args.calibrate_batches, method)
    print(f'recipe applied: {counts}')
    return counts['batches']


def _table(rows: List[tuple], keys: Sequence[str]) -> str:
    lines = [
        '| model | ' + ' | '.join(k.split('/')[-1] for k in keys) + ' |',
        '|---|' + '---:|' * len(keys)
    ]
    lines += [
        f'| {name} | ' + ' | '.join(f'{metrics.get(k, float("nan")):.2f}' for k in keys) + ' |'
        for name, metrics in rows
    ]
    return '\n'.join(lines)


def _table_keys(metrics: dict, adapter: ModelAdapter) -> List[str]:
    return sorted(k for k, v in metrics.items()
                  if isinstance(v, float) and k.startswith(adapter.table_prefix))


def _skip(args, adapter_default: Sequence[str]) -> Sequence[str]:
    skip_layers = getattr(args, 'skip_layers', None)
    return adapter_default if skip_layers is None else skip_layers


def method_output(output: str, method: str, methods: Sequence[str]) -> str:
    """``OUT`` for one method; ``OUT`` with ``_<method>`` before the extension for several."""
    if len(methods) == 1:
        return output
    stem, extension = osp.splitext(output)
    return f'{stem}_{method}{extension or ".pth"}'


def run_ptq(args, adapter: ModelAdapter, default_skip: Sequence[str]) -> List[tuple]:
    """Float and PTQ metrics, ``[(row name, metrics), ...]``; one checkpoint per method."""
    methods = list(dict.fromkeys(args.method))
    inputs = _load(args, adapter, default_skip, methods)
    model = inputs.model
    float_metrics = _evaluate(inputs, model)
    seen = _calibrated(inputs, args, methods[0])
    rows = [('float', float_metrics)]
    manager = CalibrationManager(model, progress=False) if len(methods) > 1 else None
    for method in methods:
        if manager is not None and method != methods[0]:
            manager.compute_amax(method)  # the histograms of the one calibration pass
        rows.append((f'PTQ ({method})', _evaluate(inputs, model)))
        output = method_output(args.output, method, methods)
        save_quantized_checkpoint(
            model,
            output,
            inputs.recipe,
            meta={
                'float_checkpoint': args.checkpoint,
                'calibration': dict(batches=seen, requested=args.calibrate_batches,
                                    method=method, split=args.calib_split)
            })
        print(f'saved {output}')
    keys = _table_keys(float_metrics, adapter)
    print(_table(rows, keys))
    return rows


def run_sensitivity(args, adapter: ModelAdapter, default_skip: Sequence[str]):
    """Per-layer report (CSV + PNG) and the greedy skip list; returns both."""
    inputs = _load(args, adapter, ())
    cfg, model, loader = inputs.cfg, inputs.model, inputs.test_loader
    _calibrated(inputs, args, args.method)
    batches = list(islice(loader, args.eval_batches)) if args.eval_batches else loader
    num_samples = sum(len(b['data_samples']) for b in batches) if args.eval_batches else None

    def metric(m):
        evaluator = Evaluator(cfg.test_evaluator)
        evaluator.dataset_meta = loader.dataset.metainfo
        return evaluate_model(m, batches, evaluator, num_samples)[adapter.metric_key]

    layers = None
    if args.layers:
        layers = sorted({name.rpartition('.')[0] for name in match_quantizers(model, args.layers)})
    report = layer_sensitivity(model, metric, layers)
    save_sensitivity_csv(report, args.output)
    png_path = osp.splitext(args.output)[0] + '.png'
    plot_sensitivity(report, png_path, adapter.metric_key)
    print(f'float {report.float_metric:.2f}, all INT8 {report.quant_metric:.2f} '
          f'({adapter.metric_key})\n')
    print('| rank | layer | only this layer INT8 | loss | all but this layer | gain |')
    print('|---:|---|---:|---:|---:|---:|')
    for rank, row in enumerate(report.top(10), 1):
        print(f'| {rank} | {row.layer} | {row.only_quantized:.2f} | {row.delta_only:.2f} | '
              f'{row.all_but:.2f} | {row.gain_all_but:.2f} |')
    search = greedy_skip_search(model, metric, [r.layer for r in report.layers], args.budget,
                                report.float_metric)
    print(f'\nsuggested skip list for a budget of {args.budget} points: '
          f'{search.skip_layers or "none"} ({adapter.metric_key} {search.metric:.2f})')
    print(f'written: {args.output}, {png_path}')
    return report, search


def run_qat(args, adapter: ModelAdapter, default_skip: Sequence[str]) -> dict:
    """QAT with QATHook in an MMEngine Runner; returns the final validation metrics."""
    inputs = _load(args, adapter, default_skip)
    cfg, recipe = inputs.cfg, inputs.recipe
    qat_cfg = copy.deepcopy(cfg)
    qat_cfg.work_dir = args.output
    start = resolve_start(args.output, args.resume, args.checkpoint)
    start.apply(qat_cfg)
    print(f'QAT: {start.message}', flush=True)
    qat_cfg.train_cfg.max_epochs = args.epochs
    # evaluated below as PTQ is, not by the runner
    qat_cfg.val_dataloader = qat_cfg.val_cfg = qat_cfg.val_evaluator = None
    hooks = [h for h in qat_cfg.get('custom_hooks', []) if h.get('type') != 'QATHook']
    hooks.append(
        dict(
            type='QATHook',
            recipe=recipe.to_dict(),
            calib_batches=args.calibrate_batches,
            calib_method=args.method))
    qat_cfg.custom_hooks = hooks
    base_lr = qat_cfg.optim_wrapper.optimizer.lr
    lr = args.lr if args.lr is not None else base_lr / 10
    if adapter.qat_optimizer is not None:
        iters_per_epoch = len(Runner.build_dataloader(qat_cfg.train_dataloader, seed=0)
                              if args.calib_split == 'val' else inputs.calib_loader)
        adapter.qat_optimizer(qat_cfg, lr, args.epochs, iters_per_epoch)
    else:
        qat_cfg.optim_wrapper.optimizer.lr = lr
    runner = Runner.from_cfg(qat_cfg)
    runner.train()
    metrics = _evaluate(inputs, runner.model)
    print(
        _table([(f'QAT ({args.epochs} epochs, lr {lr:g})', metrics)], _table_keys(metrics,
                                                                                  adapter)))
    print(f'checkpoints in {args.output} (resume with --resume)')
    return metrics


def run(argv: Optional[Sequence[str]], adapter: ModelAdapter, default_skip: Sequence[str] = ()):
    """Parse ``argv`` and run its verb; returns the verb's result (for scripts such as demos).
    Bad input raises :class:`~quantization.errors.UserError`, ``OSError``, ``KeyError`` or
    ``ValueError`` before any heavy work; output folders are created only when written."""
    args = _parser(adapter).parse_args(argv)
    verbs = {'ptq': run_ptq, 'sensitivity': run_sensitivity, 'qat': run_qat}
    return verbs[args.verb](args, adapter, default_skip)


def main(argv: Optional[Sequence[str]], adapter: ModelAdapter,
         default_skip: Sequence[str] = ()) -> int:
    """:func:`run` as a command: bad input ends with one ``error:`` line and exit code 2."""

    def command():
        run(argv, adapter, default_skip)

    return run_tool(command)
