"""Export a trained model to float ONNX, Q/DQ ONNX and a TensorRT INT8 engine, from config files.

    python tools/deploy.py DEPLOY_CONFIG MODEL_CONFIG CHECKPOINT --work-dir DIR [--engine MODE]

CHECKPOINT is float (PTQ runs as the deploy config says) or quantized (from PTQ or QATHook; its
recipe and amax are used). Writes every artifact and deploy_report.{json,md} into DIR.
"""
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import deployment  # noqa: E402,F401
import quantization  # noqa: E402,F401
from deployment.pipeline import DeployPipeline  # noqa: E402
from deployment.tensorrt_builder import TensorRTUnavailable  # noqa: E402
from quantization.errors import ToolArgumentParser, run_tool  # noqa: E402
from quantization.user_input import (add_cfg_options, check_input_file,  # noqa: E402
                                     merge_cfg_options, read_config)


def parse_args(argv=None):
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('deploy_config')
    parser.add_argument('model_config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--engine',
        choices=['auto', 'require', 'skip'],
        help='TensorRT engine: build where installed (auto), fail without it '
        '(require), or not at all; overrides tensorrt.build')
    add_cfg_options(parser, 'override deploy config keys')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')

    def deploy():
        deploy_cfg = read_config(args.deploy_config, 'deploy config', ('onnx_config', ))
        model_cfg = read_config(args.model_config, 'model config', ('model', ))
        check_input_file(args.checkpoint, 'checkpoint')
        merge_cfg_options(deploy_cfg, args.cfg_options)
        if args.engine:
            deploy_cfg.tensorrt.build = args.engine
        report = DeployPipeline(deploy_cfg, model_cfg, args.checkpoint, args.work_dir).run()
        print(open(report['report_files'][1]).read())

    return run_tool(deploy, (TensorRTUnavailable, ))


if __name__ == '__main__':
    sys.exit(main())
