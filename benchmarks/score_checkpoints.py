"""Checkpoints of the shipped models (float or quantized, from any of our flows) on the same frames.

The shipped float model and every ``NAME=CHECKPOINT`` given are scored on the validation set of
the small config, or on the separate test set the headline measurement generates once
(``--test N``: CenterPoint scenes as ``measure_centerpoint.py --test-scenes N``, SceneSeg images
per style as ``measure_sceneseg.py --test-per-style N``); every figure gets its 95 % bootstrap
interval and every difference from float is paired on the same frames, with its standard error
and, for ``--goal G``, the frames a goal of ``G`` points would need and the verdict.

    python benchmarks/score_checkpoints.py --model centerpoint --test 1000 --goal -0.5 \\
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
from quantization.bootstrap import bootstrap  # noqa: E402
from quantization.checkpoint import load_model_checkpoint  # noqa: E402
from quantization.evaluation import evaluate_frames  # noqa: E402
from quantization.markdown import markdown_table  # noqa: E402


def centerpoint_setup(test: int):
    """CenterPoint's config (test split of ``test`` scenes, 0: val), checkpoint and metric."""
    from benchmarks.measure_centerpoint import KEY, ensure_test_split
    from tools.centerpoint_demo import CONFIG, SHIPPED_CHECKPOINT, ensure_data
    cfg = Config.fromfile(CONFIG)
    ensure_data(cfg)
    if test:
        cfg.test_dataloader.dataset.ann_file = ensure_test_split(cfg, test)
    return cfg, SHIPPED_CHECKPOINT, KEY


def sceneseg_setup(test: int):
    """SceneSeg's config (``test`` generated images per style, 0: val), checkpoint and metric."""
    from benchmarks.measure_sceneseg import KEY, TEST_ROOT, ensure_test_images
    from tools.sceneseg_demo import CONFIG, SHIPPED_CHECKPOINT, ensure_data
    cfg = Config.fromfile(CONFIG)
    ensure_data(cfg)
    if test:
        ensure_test_images(test)
        cfg.test_dataloader.dataset.data_root = TEST_ROOT
        cfg.test_dataloader.dataset.split = 'all'
    return cfg, SHIPPED_CHECKPOINT, KEY


SETUPS = {'centerpoint': centerpoint_setup, 'sceneseg': sceneseg_setup}


def named_checkpoint(text: str):
    name, sep, path = text.rpartition('=')
    if not sep or not name or not osp.isfile(path):
        raise argparse.ArgumentTypeError(f'{text}: give NAME=CHECKPOINT with an existing file')
    return name, path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoints', nargs='+', type=named_checkpoint,
                        metavar='NAME=CHECKPOINT')
    parser.add_argument('--model', choices=sorted(SETUPS), default='centerpoint')
    parser.add_argument('--test', type=int, default=0,
                        help='score on the separate test set: N CenterPoint scenes or N SceneSeg '
                        'images per style (0: the validation set)')
    parser.add_argument('--goal', type=float, default=None,
                        help='lowest allowed difference from float, in metric points')
    args = parser.parse_args(argv)
    started = time.time()
    cfg, float_checkpoint, key = SETUPS[args.model](args.test)
    init_default_scope(cfg.default_scope)
    loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    evaluations = {}
    for name, path in [('float', float_checkpoint)] + args.checkpoints:
        model = MODELS.build(cfg.model)
        kind = load_model_checkpoint(model, path)
        _, evaluations[name] = evaluate_frames(model.eval(), loader, cfg.test_evaluator,
                                               progress=True)
        print(f'scored {name} ({kind}, {path})', flush=True)
    intervals = bootstrap(evaluations, [key], reference='float')
    goal = (args.goal, None) if args.goal is not None else (None, None)
    rows = [goal_row('float', intervals.metric['float'][key], None)]
    rows += [goal_row(name, intervals.metric[name][key], intervals.difference[name][key],
                      'float', goal, intervals.frames) for name, _ in args.checkpoints]
    print(markdown_table(HEADERS, rows, ALIGN))
    print(f'{key}, %, on {intervals.frames} frames; 95% bootstrap intervals '
          f'({intervals.rounds} draws), differences paired; {(time.time() - started) / 60:.0f} '
          'min')
    return 0


if __name__ == '__main__':
    sys.exit(main())
