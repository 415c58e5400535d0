"""Every-layer-INT8 PTQ with each algorithm of ``quantization`` alone and combined, on the same
calibration batches and test frames, with intervals and the calibration time of each as a
ratio to one float pass over the calibration batches.

    python benchmarks/ptq_algorithms.py [--model centerpoint|sceneseg] [--default-skip]
        [--calib-batches 16] [--choice-batches 2] [--range-batches 8] [--range-steps 600]
        [--only NAME ...]

Variants: the model's default amax method; with cross-layer equalization; with the amax chosen
per layer (``method_choice``, as ``ptq --per-layer-amax``: weighted by the model's importance map
where its adapter has one, among the methods and a grid of fractions of max); with every
activation amax learned against the float model's output (``ptq --learn-ranges``); with
AdaRound; with bias correction; combinations.
"""
import argparse
import os.path as osp
import sys
import time
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.runner import set_random_seed  # noqa: E402

from apis.inputs import load_inputs  # noqa: E402
from apis.ptq import (RANGE_STEPS, calibrate, choose_amax,  # noqa: E402
                      correct_and_learn_ranges, draw_intervals, evaluate)
from quantization.adaround import adaround  # noqa: E402
from quantization.descriptor import AMAX_METHODS  # noqa: E402
from quantization.calibration import default_forward  # noqa: E402

MODELS = {
    'centerpoint': ('configs/centerpoint/centerpoint_pillar_synthetic_small.py',
                    'projects/CenterPoint/checkpoints/centerpoint_pillar_synthetic_small.pth'),
    'sceneseg': ('configs/sceneseg/sceneseg_synthetic_small.py',
                 'projects/SceneSeg/checkpoints/sceneseg_synthetic_small.pth'),
}
#: name -> the algorithms it runs, in this order: equalization, calibration (always), per-layer
#: amax (or its sequential search), AdaRound, bias correction, learned ranges
VARIANTS = {
    'one method': (),
    'equalization': ('equalize', ),
    'per-layer amax': ('choice', ),
    'AdaRound': ('adaround', ),
    'bias correction': ('bias', ),
    'per-layer amax + bias correction': ('choice', 'bias'),
    'sequential per-layer amax': ('sequential', ),
    'sequential per-layer amax + bias correction': ('sequential', 'bias'),
    'AdaRound + bias correction': ('adaround', 'bias'),
    'learned ranges': ('ranges', ),
    'learned ranges + bias correction': ('ranges', 'bias'),
    'per-layer amax + learned ranges': ('choice', 'ranges'),
    'all': ('equalize', 'choice', 'adaround', 'bias'),
}


def adapter_of(model):
    if model == 'centerpoint':
        from projects.CenterPoint.quantization.adapter import CENTERPOINT
        return CENTERPOINT
    from projects.SceneSeg.quantization.adapter import SCENESEG
    return SCENESEG


@torch.no_grad()
def float_pass_seconds(inputs, batches: int) -> float:
    """Seconds of one float forward over the first ``batches`` calibration batches."""
    start = time.perf_counter()
    for index, batch in enumerate(inputs.calib_loader):
        if index == batches:
            break
        default_forward(inputs.model, batch)
    return time.perf_counter() - start


def run_variant(args, adapter, algorithms):
    """Quantize a fresh float model with one variant; returns (frames, seconds, choices)."""
    config, checkpoint = MODELS[args.model]
    inputs = load_inputs(config, checkpoint, adapter, None if args.default_skip else [], 'train')
    inputs.recipe.equalize = 'equalize' in algorithms
    start = time.perf_counter()
    calibrate(inputs, args.calib_batches, args.method)
    choices = []
    if 'choice' in algorithms or 'sequential' in algorithms:
        choices = choose_amax(inputs, adapter, args.choice_batches, 'sequential' in algorithms)
    if 'adaround' in algorithms:
        set_random_seed(0)
        adaround(inputs.model, inputs.calib_loader, args.choice_batches)
    correct_and_learn_ranges(inputs, adapter, args.calib_batches, 'bias' in algorithms,
                             args.range_batches if 'ranges' in algorithms else 0,
                             args.range_steps)  # last, as ptq runs them
    seconds = time.perf_counter() - start
    _, frames = evaluate(inputs)
    return frames, seconds, choices


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', choices=sorted(MODELS), default='centerpoint')
    parser.add_argument('--default-skip', action='store_true',
                        help='the recipe\'s skip list (default: every layer INT8)')
    parser.add_argument('--calib-batches', type=int, default=16)
    parser.add_argument('--choice-batches', type=int, default=2,
                        help='batches for the per-layer amax and AdaRound')
    parser.add_argument('--range-batches', type=int, default=8,
                        help='batches for the learned ranges')
    parser.add_argument('--range-steps', type=int, default=RANGE_STEPS)
    parser.add_argument('--only', nargs='+', choices=sorted(VARIANTS), default=sorted(VARIANTS))
    parser.add_argument('--method', choices=AMAX_METHODS,
                        help='amax method of every variant (default: the model\'s PTQ default)')
    args = parser.parse_args()
    adapter = adapter_of(args.model)
    args.method = args.method or adapter.method_for('ptq')
    config, checkpoint = MODELS[args.model]
    inputs = load_inputs(config, checkpoint, adapter, [], 'train')
    float_pass_seconds(inputs, 1)  # warm-up
    float_seconds = float_pass_seconds(inputs, args.calib_batches)
    _, float_frames = evaluate(inputs)
    evaluations, ratios = {'float': float_frames}, {}
    for name, algorithms in VARIANTS.items():
        if name not in args.only:
            continue
        frames, seconds, choices = run_variant(args, adapter, algorithms)
        evaluations[name], ratios[name] = frames, seconds / float_seconds
        if choices:
            print(f'{name}: amax chosen {dict(Counter(c.method for c in choices))}')
    key = adapter.metric_key
    intervals = draw_intervals(evaluations, [key], 1000)
    print(f'{args.model}, {"default skip list" if args.default_skip else "every layer INT8"}, '
          f'{args.method}, {args.calib_batches} calibration batches (one float pass '
          f'over them: {float_seconds:.1f} s), per-layer amax and AdaRound on '
          f'{args.choice_batches}, learned ranges on {args.range_batches} '
          f'({args.range_steps} steps)')
    print(f'| PTQ | {key} [95%] | minus float [95%] | calibration time / float pass |\n'
          '|---|---:|---:|---:|')
    for name in intervals.metric:
        difference = intervals.difference.get(name, {}).get(key, '')
        ratio = f'{ratios[name]:.1f}' if name in ratios else ''
        print(f'| {name} | {intervals.metric[name][key]} | {difference} | {ratio} |')
    print(f'{intervals.frames} test frames, {intervals.rounds} bootstrap draws')


if __name__ == '__main__':
    main()
