"""Test a float or quantized checkpoint with MMEngine's ``Runner.test`` (mmdet3d's flags).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR] [--cfg-options ...]
    torchrun --nproc_per_node=N tools/test.py CONFIG CHECKPOINT --launcher pytorch

A quantized checkpoint (from PTQ, QATHook or the quantization CLI) is rebuilt from the recipe in
its metadata before loading; a float one loads as it is. Both load with weights_only=True. Bad
input ends with one ``error:`` line and exit code 2.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.dist import is_main_process  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from apis import close_launcher, distributed_runner_cfg, init_launcher  # noqa: E402
from apis.launcher import add_launcher_options  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from apis.user_input import (add_cfg_options, check_input_file,  # noqa: E402
                             merge_cfg_options, read_config)
from quantization import load_model_checkpoint  # noqa: E402
from quantization.errors import UserError  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402
from quantization.markdown import markdown_table  # noqa: E402

REQUIRED_KEYS = ('model', 'test_dataloader', 'test_evaluator')
# Runner arguments a test run takes from the config (training-only keys are left out)
RUNNER_KEYS = ('test_dataloader', 'test_evaluator', 'default_hooks', 'env_cfg', 'log_processor',
               'log_level', 'visualizer', 'default_scope', 'randomness', 'experiment_name')


def parse_args(argv=None):
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='MMEngine config file')
    parser.add_argument('checkpoint', help='float or quantized checkpoint')
    parser.add_argument('--work-dir', help='where logs and metrics go (default: '
                        'work_dirs/<config name>)')
    parser.add_argument('--show-dir', help='draw predictions into this folder (the config\'s '
                        'default_hooks.visualization)')
    add_cfg_options(parser)
    add_launcher_options(parser)
    return parser.parse_args(argv)


def trigger_visualization_hook(cfg, show_dir: str) -> None:
    """mmdet3d's ``--show-dir``: the visualization hook draws every test sample into it."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise UserError(f'--show-dir: {cfg.filename} has no default_hooks.visualization '
                        '(e.g. dict(type=\'Det3DVisualizationHook\'))')
    hook.draw = True
    hook.test_out_dir = osp.abspath(show_dir)


def build_runner(args) -> tuple:
    """``(checkpoint kind, Runner)``: 'float' or 'quantized', the Runner holding its weights."""
    cfg = read_config(args.config, 'config', REQUIRED_KEYS)
    merge_cfg_options(cfg, args.cfg_options)
    check_input_file(args.checkpoint, 'checkpoint')
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_output_dir(cfg.work_dir, '--work-dir')
    if args.show_dir:
        check_output_dir(args.show_dir, '--show-dir')
        trigger_visualization_hook(cfg, args.show_dir)
    if cfg.get('default_scope'):
        init_default_scope(cfg.default_scope)
    init_launcher(args.launcher)
    distributed_runner_cfg(cfg, args.launcher)
    model = MODELS.build(cfg.model)
    kind = load_model_checkpoint(model, args.checkpoint)  # rebuilt first when quantized
    runner = Runner(model=model, work_dir=cfg.work_dir, test_cfg=cfg.get('test_cfg') or {},
                    launcher=cfg.launcher, cfg=cfg,  # the Runner reads model_wrapper_cfg there
                    **{key: cfg[key] for key in RUNNER_KEYS if cfg.get(key) is not None})
    return kind, runner


def main(argv=None) -> int:
    args = parse_args(argv)

    def test():
        kind, runner = build_runner(args)
        metrics = runner.test()
        if is_main_process():
            print(markdown_table((f'{kind} checkpoint', 'metric', 'value'),
                                 [(osp.basename(args.checkpoint), key, f'{value:.4f}')
                                  for key, value in metrics.items() if isinstance(value, float)],
                                 'llr'))
        close_launcher()

    return run_tool(test)


if __name__ == '__main__':
    sys.exit(main())
