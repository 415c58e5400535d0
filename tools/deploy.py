"""Export a trained model to float ONNX, Q/DQ ONNX and a TensorRT INT8 engine, from config files.

    python tools/deploy.py DEPLOY_CONFIG MODEL_CONFIG CHECKPOINT --work-dir DIR [--engine MODE]

CHECKPOINT is float (PTQ runs as the deploy config says) or quantized (from PTQ or QATHook; its
recipe and amax are used). Writes every artifact and deploy_report.{json,md} into DIR.
"""
import argparse
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402

import deployment  # noqa: E402,F401
import quantization  # noqa: E402,F401
from deployment.pipeline import DeployPipeline  # noqa: E402
from deployment.tensorrt_builder import TensorRTUnavailable  # noqa: E402
from quantization.cli import print_error  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('deploy_config')
    parser.add_argument('model_config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--engine',
        choices=['auto', 'require', 'skip'],
        help='TensorRT engine: build where installed (auto), fail without it '
        '(require), or not at all; overrides tensorrt.build')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override deploy config keys')
    return parser.parse_args(argv)


def read_config(path: str) -> Config:
    try:
        return Config.fromfile(path)
    except Exception as err:  # syntax errors, bad _base_ merges, failed custom_imports
        raise ValueError(f'cannot read config {path}: {err}') from err


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        for kind, path in (('deploy config', args.deploy_config),
                           ('model config', args.model_config), ('checkpoint', args.checkpoint)):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{kind} {path} does not exist')
        deploy_cfg, model_cfg = read_config(args.deploy_config), read_config(args.model_config)
        deploy_cfg.merge_from_dict(args.cfg_options)
        if args.engine:
            deploy_cfg.tensorrt.build = args.engine
        report = DeployPipeline(deploy_cfg, model_cfg, args.checkpoint, args.work_dir).run()
    except (FileNotFoundError, KeyError, ValueError, TensorRTUnavailable) as err:
        return print_error(err)
    print(open(report['report_files'][1]).read())
    return 0


if __name__ == '__main__':
    sys.exit(main())
