"""PTQ with one amax method for the whole model against the method chosen per layer
(``quantization.method_choice``), same calibration pass, same test frames, with intervals.

    python benchmarks/ptq_method_choice.py [--model centerpoint|sceneseg] [--all-int8]
        [--calib-batches 16] [--choice-batches 2]
"""
import argparse
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from apis.inputs import load_inputs  # noqa: E402
from apis.ptq import calibrate, draw_intervals, evaluate  # noqa: E402
from quantization.method_choice import choose_amax_methods  # noqa: E402

MODELS = {
    'centerpoint': ('configs/centerpoint/centerpoint_pillar_synthetic_small.py',
                    'projects/CenterPoint/checkpoints/centerpoint_pillar_synthetic_small.pth'),
    'sceneseg': ('configs/sceneseg/sceneseg_synthetic_small.py',
                 'projects/SceneSeg/checkpoints/sceneseg_synthetic_small.pth'),
}


def adapter_of(model):
    if model == 'centerpoint':
        from projects.CenterPoint.quantization.adapter import CENTERPOINT
        return CENTERPOINT
    from projects.SceneSeg.quantization.adapter import SCENESEG
    return SCENESEG


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', choices=sorted(MODELS), default='centerpoint')
    parser.add_argument('--all-int8', action='store_true', help='no skip list')
    parser.add_argument('--calib-batches', type=int, default=16)
    parser.add_argument('--choice-batches', type=int, default=2)
    args = parser.parse_args()
    config, checkpoint = MODELS[args.model]
    adapter = adapter_of(args.model)
    inputs = load_inputs(config, checkpoint, adapter, [] if args.all_int8 else None, 'train')
    _, float_frames = evaluate(inputs)
    calibrate(inputs, args.calib_batches, adapter.default_method)
    _, one_frames = evaluate(inputs)
    choices = choose_amax_methods(inputs.model, inputs.calib_loader, args.choice_batches)
    _, chosen_frames = evaluate(inputs)
    key = adapter.metric_key
    intervals = draw_intervals({'float': float_frames, adapter.default_method: one_frames,
                                'per layer': chosen_frames}, [key], 1000)
    print(f'{args.model}, {"every layer INT8" if args.all_int8 else "default skip list"}, '
          f'{args.calib_batches} calibration batches, choice on {args.choice_batches}')
    print(f'methods chosen: {dict(Counter(c.method for c in choices))}')
    for choice in choices:
        print(f'  {choice.layer}: {choice.method}')
    print(f'| PTQ amax | {key} [95%] | minus float [95%] |\n|---|---:|---:|')
    for name in intervals.metric:
        difference = intervals.difference.get(name, {}).get(key, '')
        print(f'| {name} | {intervals.metric[name][key]} | {difference} |')
    print(f'{intervals.frames} test frames, {intervals.rounds} bootstrap draws')


if __name__ == '__main__':
    main()
