"""One CLI for every model: ``ptq``, ``sensitivity`` and ``qat`` from an MMEngine config.

A model plugs in with a :class:`ModelAdapter` (how to check the config builds the right model,
its recipe, the metric to report); ``tools/centerpoint_quantization.py`` is such a thin wrapper.
Bad input ends with one ``error: ...`` line and exit code 2.
"""
import argparse
import copy
import os
import os.path as osp
import sys
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
from .evaluation import evaluate_model
from .ptq import quantize_and_calibrate
from .recipe import QuantRecipe
from .sensitivity import (greedy_skip_search, layer_sensitivity, plot_sensitivity,
                          save_sensitivity_csv)


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


class CliError(Exception):
    """A user mistake, reported as one line."""


def _parser(adapter: ModelAdapter) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=f'{adapter.name} INT8 quantization')
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


def _load(args, adapter: ModelAdapter):
    for kind, path in (('config', args.config), ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            raise CliError(f'{kind} {path} does not exist')
    if args.calibrate_batches <= 0:
        raise CliError(f'--calibrate-batches must be at least 1, got {args.calibrate_batches}')
    try:
        cfg = Config.fromfile(args.config)
    except Exception as err:
        raise CliError(f'cannot read config {args.config}: {err}') from err
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)
    if 'model' not in cfg:
        raise CliError(f'config {args.config} has no model')
    model = MODELS.build(cfg.model)
    adapter.check_model(model, f'config {args.config}')
    checkpoint = load_checkpoint_file(args.checkpoint)
    if checkpoint.get('meta', {}).get('quantization'):
        raise CliError(f'{args.checkpoint} is already quantized; pass the float checkpoint')
    load_state_dict_strict(model, checkpoint.get('state_dict', checkpoint), args.checkpoint)
    return cfg, model.eval()


def _evaluate(cfg: Config, model: nn.Module) -> Dict[str, float]:
    loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    return evaluate_model(model, loader, cfg.test_evaluator, progress=True)


def _calibrated(cfg, model, args, adapter, skip_layers, method: str) -> QuantRecipe:
    """Apply the recipe, collect calibration statistics, load amax by ``method``."""
    recipe = adapter.make_recipe(model, skip_layers)
    loader_key = 'train_dataloader' if args.calib_split == 'train' else 'val_dataloader'
    set_random_seed(0)  # the same augmented calibration batches in every run
    loader = Runner.build_dataloader(cfg[loader_key], seed=0)
    counts = quantize_and_calibrate(model, recipe, loader, args.calibrate_batches, method)
    print(f'recipe applied: {counts}')
    return recipe


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
    return adapter_default if args.skip_layers is None else args.skip_layers


def method_output(output: str, method: str, methods: Sequence[str]) -> str:
    """``OUT`` for one method; ``OUT`` with ``_<method>`` before the extension for several."""
    if len(methods) == 1:
        return output
    stem, extension = osp.splitext(output)
    return f'{stem}_{method}{extension or ".pth"}'


def run_ptq(args, adapter: ModelAdapter, default_skip: Sequence[str]) -> List[tuple]:
    """Float and PTQ metrics, ``[(row name, metrics), ...]``; one checkpoint per method."""
    cfg, model = _load(args, adapter)
    float_metrics = _evaluate(cfg, model)
    methods = list(dict.fromkeys(args.method))
    recipe = _calibrated(cfg, model, args, adapter, _skip(args, default_skip), methods[0])
    rows = [('float', float_metrics)]
    manager = CalibrationManager(model, progress=False) if len(methods) > 1 else None
    for method in methods:
        if manager is not None and method != methods[0]:
            manager.compute_amax(method)  # the histograms of the one calibration pass
        rows.append((f'PTQ ({method})', _evaluate(cfg, model)))
        output = method_output(args.output, method, methods)
        save_quantized_checkpoint(
            model,
            output,
            recipe,
            meta={
                'calib_method': method,
                'float_checkpoint': args.checkpoint,
                'calibrate_batches': args.calibrate_batches
            })
        print(f'saved {output}')
    keys = _table_keys(float_metrics, adapter)
    print(_table(rows, keys))
    return rows


def run_sensitivity(args, adapter: ModelAdapter, default_skip: Sequence[str]):
    """Per-layer report (CSV + PNG) and the greedy skip list; returns both."""
    cfg, model = _load(args, adapter)
    if args.eval_batches is not None and args.eval_batches <= 0:
        raise CliError(f'--eval-batches must be at least 1, got {args.eval_batches}')
    _calibrated(cfg, model, args, adapter, [], args.method)
    loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    batches = list(islice(loader, args.eval_batches)) if args.eval_batches else loader
    num_samples = sum(len(b['data_samples']) for b in batches) if args.eval_batches else None

    def metric(m):
        evaluator = Evaluator(cfg.test_evaluator)
        evaluator.dataset_meta = loader.dataset.metainfo
        return evaluate_model(m, batches, evaluator, num_samples)[adapter.metric_key]

    layers = None
    if args.layers:
        from .toggle import match_quantizers
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
    cfg, model = _load(args, adapter)
    recipe = adapter.make_recipe(model, _skip(args, default_skip))
    qat_cfg = copy.deepcopy(cfg)
    qat_cfg.work_dir = args.output
    qat_cfg.load_from = None if args.resume else args.checkpoint
    qat_cfg.resume = args.resume
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
        iters_per_epoch = len(Runner.build_dataloader(qat_cfg.train_dataloader, seed=0))
        adapter.qat_optimizer(qat_cfg, lr, args.epochs, iters_per_epoch)
    else:
        qat_cfg.optim_wrapper.optimizer.lr = lr
    runner = Runner.from_cfg(qat_cfg)
    runner.train()
    metrics = _evaluate(cfg, runner.model)
    print(
        _table([(f'QAT ({args.epochs} epochs, lr {lr:g})', metrics)], _table_keys(metrics,
                                                                                  adapter)))
    print(f'checkpoints in {args.output} (resume with --resume)')
    return metrics


def run(argv: Optional[Sequence[str]], adapter: ModelAdapter, default_skip: Sequence[str] = ()):
    """Parse ``argv`` and run its verb; returns the verb's result (for scripts such as demos).
    Bad input raises :class:`CliError`, ``FileNotFoundError``, ``KeyError`` or ``ValueError``."""
    args = _parser(adapter).parse_args(argv)
    if args.output and osp.dirname(args.output):
        os.makedirs(osp.dirname(args.output), exist_ok=True)
    verbs = {'ptq': run_ptq, 'sensitivity': run_sensitivity, 'qat': run_qat}
    return verbs[args.verb](args, adapter, default_skip)


def main(argv: Optional[Sequence[str]], adapter: ModelAdapter,
         default_skip: Sequence[str] = ()) -> int:
    """:func:`run` as a command: bad input ends with one ``error:`` line and exit code 2."""
    try:
        run(argv, adapter, default_skip)
    except (CliError, FileNotFoundError, KeyError, ValueError) as err:
        return print_error(err)
    return 0


def print_error(err: Exception) -> int:
    """Print ``err`` as one ``error:`` line on stderr (a KeyError without its quotes); returns the
    exit code for bad input, 2. The command-line tools end on it."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else err
    print(f'error: {message}', file=sys.stderr)
    return 2
