"""Evaluate a float or quantized checkpoint with the config's test dataloader and evaluator.

    python tools/test.py CONFIG CHECKPOINT [--cfg-options ...]

A quantized checkpoint (from PTQ, QATHook or the quantization CLI) is rebuilt from the recipe in
its metadata before loading; a float one loads as it is. Both load with weights_only=True. Bad
input ends with one ``error:`` line and exit code 2.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from quantization import evaluate_model, load_model_checkpoint  # noqa: E402
from quantization.errors import ToolArgumentParser, run_tool  # noqa: E402
from quantization.user_input import (add_cfg_options, check_input_file,  # noqa: E402
                                     merge_cfg_options, read_config)

REQUIRED_KEYS = ('model', 'test_dataloader', 'test_evaluator')


def main(argv=None) -> int:
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    add_cfg_options(parser)
    args = parser.parse_args(argv)

    def test():
        cfg = read_config(args.config, 'config', REQUIRED_KEYS)
        merge_cfg_options(cfg, args.cfg_options)
        check_input_file(args.checkpoint, 'checkpoint')
        if cfg.get('default_scope'):
            init_default_scope(cfg.default_scope)
        model = MODELS.build(cfg.model)
        kind = load_model_checkpoint(model, args.checkpoint)
        metrics = evaluate_model(model, Runner.build_dataloader(cfg.test_dataloader, seed=0),
                                 cfg.test_evaluator, progress=True)
        print(f'| {kind} checkpoint | metric | value |\n|---|---|---:|')
        for key, value in metrics.items():
            print(f'| {osp.basename(args.checkpoint)} | {key} | {value:.4f} |')

    return run_tool(test)


if __name__ == '__main__':
    sys.exit(main())
