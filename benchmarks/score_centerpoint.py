"""CenterPoint checkpoints (float or quantized, from any of our flows) scored on the same frames.

The shipped float model and every ``NAME=CHECKPOINT`` given are scored on the demo's 50
validation scenes or on ``--test-scenes N`` scenes of the separate test split (the one
``measure_centerpoint.py`` writes, generated once); every figure gets its 95 % bootstrap
interval and every difference from float is paired on the same frames, with its standard error
and, for ``--goal G``, the frames a goal of ``G`` points would need and the verdict.

    python benchmarks/score_centerpoint.py --test-scenes 1000 --goal -0.5 \\
        "PTQ every layer=work_dirs/ptq.pth" "QAT=work_dirs/qat/epoch_5.pth"
"""
import argparse
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from benchmarks.headline import ALIGN, HEADERS, goal_row  # noqa: E402
from benchmarks.measure_centerpoint import KEY, ensure_test_split  # noqa: E402
from quantization.bootstrap import bootstrap  # noqa: E402
from quantization.checkpoint import load_model_checkpoint  # noqa: E402
from quantization.evaluation import evaluate_frames  # noqa: E402
from quantization.markdown import markdown_table  # noqa: E402
from tools.centerpoint_demo import CONFIG, SHIPPED_CHECKPOINT, ensure_data  # noqa: E402


def named_checkpoint(text: str):
    name, sep, path = text.rpartition('=')
    if not sep or not name or not osp.isfile(path):
        raise argparse.ArgumentTypeError(f'{text}: give NAME=CHECKPOINT with an existing file')
    return name, path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoints', nargs='+', type=named_checkpoint,
                        metavar='NAME=CHECKPOINT')
    parser.add_argument('--test-scenes', type=int, default=0,
                        help='score on a separate test split of N scenes (0: the 50 val scenes)')
    parser.add_argument('--goal', type=float, default=None,
                        help='lowest allowed difference from float, in mAP points')
    args = parser.parse_args(argv)
    started = time.time()
    cfg = Config.fromfile(CONFIG)
    ensure_data(cfg)
    if args.test_scenes:
        cfg.test_dataloader.dataset.ann_file = ensure_test_split(cfg, args.test_scenes)
    init_default_scope(cfg.default_scope)
    loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    evaluations = {}
    for name, path in [('float', SHIPPED_CHECKPOINT)] + args.checkpoints:
        model = MODELS.build(cfg.model)
        kind = load_model_checkpoint(model, path)
        _, evaluations[name] = evaluate_frames(model.eval(), loader, cfg.test_evaluator,
                                               progress=True)
        print(f'scored {name} ({kind}, {path})', flush=True)
    intervals = bootstrap(evaluations, [KEY], reference='float')
    goal = (args.goal, None) if args.goal is not None else (None, None)
    rows = [goal_row('float', intervals.metric['float'][KEY], None)]
    rows += [goal_row(name, intervals.metric[name][KEY], intervals.difference[name][KEY],
                      'float', goal, intervals.frames) for name, _ in args.checkpoints]
    print(markdown_table(HEADERS, rows, ALIGN))
    print(f'{KEY}, %, on {intervals.frames} frames; 95% bootstrap intervals '
          f'({intervals.rounds} draws), differences paired; {(time.time() - started) / 60:.0f} '
          'min')
    return 0


if __name__ == '__main__':
    sys.exit(main())
