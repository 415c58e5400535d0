"""Train (or QAT-fine-tune) a model from an MMEngine config.

    python tools/train.py CONFIG [--work-dir DIR] [--load-from CKPT] [--resume [CKPT]]
                                 [--cfg-options key=value ...]

QAT is the same command with ``custom_hooks = [dict(type='QATHook', ...)]`` in the config and
``--load-from`` a float checkpoint; ``--resume`` continues an interrupted QAT run exactly.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

# registers QATHook, the quant modules and the checkpoint allow-list
import quantization  # noqa: E402,F401


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='MMEngine config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--load-from', help='checkpoint to start from (float or quantized)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config keys, e.g. train_cfg.max_epochs=2')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        sys.exit(f'error: config {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.load_from:
        if not osp.isfile(args.load_from):
            sys.exit(f'error: checkpoint {args.load_from} does not exist')
        cfg.load_from = args.load_from
    if args.resume == 'auto':
        cfg.resume = True
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
