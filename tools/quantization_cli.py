"""The ``ptq | sensitivity | qat`` command line of every model (the tools of CenterPoint and
SceneSeg are two lines over it): argument parsing, printing and exit codes over ``apis``.

Under ``torchrun ... --launcher pytorch`` the ranks share the work and rank 0 prints and writes.
Bad input ends with one ``error: ...`` line and exit code 2, found before any heavy work.
"""
import argparse
from typing import Optional, Sequence

from mmengine.dist import is_main_process

from apis import ModelAdapter, close_launcher, init_launcher, ptq, qat, sensitivity
from apis.launcher import add_launcher_options
from apis.ptq import RANGE_STEPS
from apis.tool import ToolArgumentParser, run_tool
from apis.user_input import add_cfg_options
from quantization.bootstrap import DEFAULT_ROUNDS
from quantization.descriptor import AMAX_METHODS

VERBS = {
    'ptq': 'calibrate and save a quantized checkpoint',
    'sensitivity': 'per-layer sensitivity and a skip list',
    'qat': 'quantization-aware training with QATHook',
}


def _add_common(sub, adapter: ModelAdapter, verb: str):
    sub.add_argument('--config', required=True, help='MMEngine / mmdet3d model config')
    sub.add_argument('--checkpoint', required=True, help='float checkpoint')
    sub.add_argument('--calib-batches', type=int, default=100,
                     help='calibration batches (over all processes)')
    if verb == 'ptq':
        sub.add_argument('--method', nargs='+', choices=AMAX_METHODS,
                         default=[adapter.method_for(verb)],
                         help='amax method(s); several: one calibration pass, one checkpoint '
                         'each (OUT with _<method> before the extension)')
    else:
        sub.add_argument('--method', choices=AMAX_METHODS, default=adapter.method_for(verb),
                         help='amax method')
    sub.add_argument('--calib-split', choices=['train', 'val'], default='train',
                     help='dataloader the calibration batches come from')
    sub.add_argument('--output', required=True,
                     help='work dir' if verb == 'qat' else 'output file')
    sub.add_argument('--device', default=None,
                     help='cpu, cuda or cuda:N (default: cuda when available, else cpu)')
    sub.add_argument('--per-layer-amax', type=int, default=0, metavar='BATCHES',
                     help='choose each layer\'s input amax on this many calibration '
                     'batches, by its output error' + (
                         ' weighted by where the model\'s output matters'
                         if adapter.importance else '') + ' (0: --method\'s for every layer)'
                     + ('; QAT starts from that PTQ model' if verb == 'qat' else ''))
    if verb != 'sensitivity':
        sub.add_argument('--learn-ranges', type=int, default=0, metavar='BATCHES',
                         help='train every activation amax on this many calibration batches so '
                         'that the model\'s output matches the float model\'s (after '
                         '--per-layer-amax; 0: off)' + ('; QAT starts from that PTQ model'
                                                        if verb == 'qat' else ''))
        sub.add_argument('--range-steps', type=int, default=RANGE_STEPS,
                         help='optimizer steps of --learn-ranges')
        sub.add_argument('--bias-correction', action=argparse.BooleanOptionalAction,
                         default=None, help='correct each layer\'s bias by its mean output '
                         'shift on the calibration batches; unset: '
                         f'{"on" if adapter.bias_correction_for(verb) else "off"}')
    add_launcher_options(sub)
    add_cfg_options(sub)


def build_parser(adapter: ModelAdapter) -> ToolArgumentParser:
    parser = ToolArgumentParser(description=f'{adapter.name} INT8 quantization')
    verbs = parser.add_subparsers(dest='verb', required=True)
    for verb, help_text in VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        _add_common(sub, adapter, verb)
        if verb != 'sensitivity':  # sensitivity analyses every layer
            sub.add_argument('--skip-layers', nargs='*', default=None,
                             help='layer patterns left in float (default: the recipe\'s list: '
                             f'{" ".join(adapter.skip_layers_for(verb)) or "none"})')
        sub.add_argument('--bootstrap-rounds', type=int, default=DEFAULT_ROUNDS,
                         help='draws of test frames for the 95%% intervals printed beside the '
                         'figures (0: none)')
        if verb == 'ptq':
            sub.add_argument('--equalize', action=argparse.BooleanOptionalAction, default=None,
                             help='cross-layer equalization of ReLU-joined layers before '
                             'calibration; unset keeps the recipe\'s setting')
            sub.add_argument('--adaround', type=int, default=0, metavar='BATCHES',
                             help='learn the weights\' rounding (AdaRound) on this many '
                             'calibration batches (0: nearest rounding)')
        if verb == 'sensitivity':
            sub.add_argument('--budget', type=float, default=0.3,
                             help=f'{adapter.metric_key} points the skip list may lose')
            sub.add_argument('--layers', nargs='*', default=None,
                             help='analyse only layers matching these patterns (default: all)')
            sub.add_argument('--eval-batches', type=int, default=None,
                             help='score each variant on the first N test batches (default: '
                             'all)')
        if verb == 'qat':
            sub.add_argument('--epochs', type=int, default=2)
            sub.add_argument('--lr', type=float, default=None,
                             help='peak learning rate (default: 10x below the config\'s)')
            sub.add_argument('--resume', action='store_true',
                             help='continue from the last complete checkpoint in --output')
            sub.add_argument('--amp', action='store_true',
                             help='mixed precision (fake quantization stays float32)')
            sub.add_argument('--seed', type=int, default=None,
                             help='training seed (default: the config\'s randomness.seed)')
            sub.add_argument('--learn-amax', action='store_true',
                             help='train the activation ranges (LSQ) instead of keeping the '
                             'calibrated ones')
            sub.add_argument('--float-control', action='store_true',
                             help='the same training without quantization: what the extra '
                             'training alone gives')
    return parser


def _common(args) -> dict:
    return dict(calib_split=args.calib_split, cfg_options=args.cfg_options, device=args.device,
                launcher=args.launcher)


def run(argv: Optional[Sequence[str]], adapter: ModelAdapter):
    """Parse ``argv``, run its verb and print its result (rank 0); returns the result."""
    args = build_parser(adapter).parse_args(argv)
    init_launcher(args.launcher)
    say = print if is_main_process() else (lambda *_: None)
    if args.verb == 'ptq':
        result = ptq(args.config, args.checkpoint, adapter, args.output, args.method,
                     args.calib_batches, args.skip_layers, bootstrap_rounds=args.bootstrap_rounds,
                     equalize=args.equalize, bias_correction=args.bias_correction,
                     adaround=args.adaround, per_layer_amax=args.per_layer_amax,
                     learn_ranges=args.learn_ranges, range_steps=args.range_steps,
                     **_common(args))
        for choice in result.amax_choices:
            say(f'amax of {choice.layer}: {choice.method} ({choice.amax:.4g})')
        if result.learned_ranges is not None:
            ranges = result.learned_ranges
            say(f'learned ranges: distance to float {ranges.loss_before:.4g} -> '
                f'{ranges.loss_after:.4g}' + ('' if ranges.kept else ', calibrated kept'))
        for path in result.checkpoints.values():
            say(f'saved {path}')
        say(result.table())
    elif args.verb == 'sensitivity':
        result = sensitivity(args.config, args.checkpoint, adapter, args.output,
                             args.calib_batches, args.method, args.budget, args.layers,
                             args.eval_batches, bootstrap_rounds=args.bootstrap_rounds,
                             per_layer_amax=args.per_layer_amax, **_common(args))
        report, search, key = result.report, result.search, adapter.metric_key
        if result.headline is not None:
            figures = (f'float {result.headline.metric["float"][key]}, all INT8 '
                       f'{result.headline.metric["int8"][key]}, all INT8 minus float '
                       f'{result.headline.difference["int8"][key]} (95% bootstrap intervals, '
                       'paired)')
        else:
            figures = f'float {report.float_metric:.2f}, all INT8 {report.quant_metric:.2f}'
        say(f'{figures}; {key}, every figure over {result.frames} test frames, calibration '
            f'{result.calib_batches} batches\n')
        say(result.table())
        say(f'\nsuggested skip list for a budget of {args.budget} points: '
            f'{search.skip_layers or "none"} ({adapter.metric_key} {search.metric:.2f})')
        say(f'written: {result.csv}, {result.png}')
    else:
        result = qat(args.config, args.checkpoint, adapter, args.output, args.epochs, args.lr,
                     args.resume, args.calib_batches, args.method, args.skip_layers,
                     amp=args.amp, seed=args.seed, bootstrap_rounds=args.bootstrap_rounds,
                     learn_amax=args.learn_amax, per_layer_amax=args.per_layer_amax,
                     bias_correction=args.bias_correction, float_control=args.float_control,
                     learn_ranges=args.learn_ranges, range_steps=args.range_steps,
                     **_common(args))
        say(result.table())
        say(f'checkpoints in {args.output} (resume with --resume)')
    close_launcher()
    return result


def main(argv: Optional[Sequence[str]], adapter: ModelAdapter) -> int:
    """:func:`run` as a command: bad input ends with one ``error:`` line and exit code 2."""
    return run_tool(lambda: run(argv, adapter) and None)
