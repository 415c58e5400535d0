"""Train (or QAT-fine-tune) a model from an MMEngine config.

    python tools/train.py CONFIG [--work-dir DIR] [--load-from CKPT] [--resume [CKPT]] [--amp]
                                 [--auto-scale-lr] [--cfg-options key=value ...]
    torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch ...

mmdet3d's flags, plus ``--load-from``. Multi-process runs work on GPUs (NCCL) and on the CPU
(gloo; ``apis/launcher.py``).

QAT is the same command with ``custom_hooks = [dict(type='QATHook', ...)]`` in the config and
``--load-from`` a float checkpoint. ``--resume`` continues from the work dir's last complete
checkpoint, or starts from ``--load-from`` when there is none (the resume rule,
``quantization/resume.py``); QAT never starts from random weights. Bad input ends with one
``error:`` line and exit code 2 before the Runner is built.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.dist import is_main_process  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

# registers QATHook, the quant modules and the checkpoint allow-list
from apis import close_launcher, distributed_runner_cfg, init_launcher  # noqa: E402
from apis.launcher import add_launcher_options  # noqa: E402
from apis.qat import enable_amp  # noqa: E402
from quantization import load_checkpoint_file  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from quantization.errors import UserError  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402
from quantization.resume import resolve_start, trains_qat  # noqa: E402
from apis.user_input import (add_cfg_options, check_input_file,  # noqa: E402
                             merge_cfg_options, read_config)

REQUIRED_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper')


def parse_args(argv=None):
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='MMEngine config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--load-from', help='checkpoint to start from (float or quantized)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from CKPT, or from the last complete checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (fake quantization stays float32)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the total batch size over the config\'s '
                        'auto_scale_lr.base_batch_size')
    add_cfg_options(parser)
    add_launcher_options(parser)
    return parser.parse_args(argv)


def prepare(args):
    """The config with the work dir and the start point set; every input checked."""
    cfg = read_config(args.config, 'config', REQUIRED_KEYS)
    merge_cfg_options(cfg, args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_output_dir(cfg.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise UserError(f'--auto-scale-lr: {args.config} has no auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr.enable = True
    if args.load_from:
        check_input_file(args.load_from, '--load-from')
    if args.resume not in (None, 'auto'):
        check_input_file(args.resume, '--resume')
    if args.resume is None:
        resume = bool(cfg.get('resume'))  # the config's own `resume = True` means auto
    else:
        resume = True if args.resume == 'auto' else args.resume
    start = resolve_start(cfg.work_dir, resume, args.load_from or cfg.get('load_from'))
    if trains_qat(cfg) and start.from_initial_weights:
        raise UserError(f'{args.config} trains with QATHook but there are no trained weights to '
                        f'start from: {start.message}; pass --load-from FLOAT.pth')
    for path in filter(None, (start.resume_from, start.load_from)):
        load_checkpoint_file(path)  # unloadable files fail here, named, not inside the Runner
    start.apply(cfg)
    init_launcher(args.launcher)
    if is_main_process():
        print(start.message, flush=True)
    return distributed_runner_cfg(cfg, args.launcher)


def main(argv=None) -> int:
    args = parse_args(argv)

    def train():
        Runner.from_cfg(prepare(args)).train()
        close_launcher()

    return run_tool(train)


if __name__ == '__main__':
    sys.exit(main())
