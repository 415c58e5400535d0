"""Export a trained model to float ONNX, Q/DQ ONNX and a TensorRT INT8 engine, from config files.

    python tools/deploy.py DEPLOY_CONFIG MODEL_CONFIG CHECKPOINT --work-dir DIR [--engine MODE]
                           [--device cpu|cuda] [--log-level INFO]

CHECKPOINT is float (PTQ runs as the deploy config says) or quantized (from PTQ or QATHook; its
recipe and amax are used). Writes every artifact and deploy_report.{json,md} into DIR.
"""
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import deployment  # noqa: E402,F401
import quantization  # noqa: E402,F401
from apis import deploy as run_deploy  # noqa: E402
from deployment.openvino_runtime import OpenVINOUnavailable  # noqa: E402
from deployment.tensorrt_builder import TensorRTUnavailable  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from apis.user_input import add_cfg_options  # noqa: E402


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
    parser.add_argument('--device', default=None,
                        help='where PTQ of a float checkpoint calibrates: cpu, cuda or cuda:N '
                        '(default: cuda when available, else cpu); export and verification run '
                        'on the CPU')
    parser.add_argument('--log-level', default='INFO',
                        choices=['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'])
    add_cfg_options(parser, 'override deploy config keys')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format='%(message)s')

    def deploy():
        report = run_deploy(args.deploy_config, args.model_config, args.checkpoint,
                            args.work_dir, args.engine, args.cfg_options, args.device)
        print(open(report['report_files'][1]).read())

    return run_tool(deploy, (TensorRTUnavailable, OpenVINOUnavailable))


if __name__ == '__main__':
    sys.exit(main())
