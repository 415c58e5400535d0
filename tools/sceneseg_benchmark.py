"""Benchmark SceneSeg: PyTorch float vs ONNX float vs ONNX INT8 (vs the QAT model), one report.

    python tools/sceneseg_benchmark.py CONFIG --checkpoint FLOAT.pth \
        [--quantized-checkpoint QAT.pth] --onnx "ONNX float=float.onnx" \
        "ONNX INT8=int8_onnxruntime.onnx" --work-dir DIR [--images-per-dataset 3] \
        [--latency-runs 20] [--threads 0]

Writes DIR/benchmark.{md,json} and DIR/predictions/*.png (Original | GT | predictions). Bad
input (a missing file, an ONNX file of another model) ends with one ``error:`` line, exit 2.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import projects.SceneSeg  # noqa: E402,F401
from projects.SceneSeg.benchmark import (benchmark, check_sceneseg_onnx, onnx_runner,  # noqa: E402
                                         torch_runner)
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from quantization.errors import UserError  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402
from apis.user_input import check_input_file, check_positive, read_config  # noqa: E402


def parse_args(argv=None):
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', required=True, help='float checkpoint (the reference)')
    parser.add_argument('--quantized-checkpoint', help='PTQ or QAT checkpoint (fake-quant)')
    parser.add_argument('--onnx', nargs='*', default=[], help='"NAME=PATH" ONNX models')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--images-per-dataset', type=int, default=3)
    parser.add_argument('--latency-runs', type=int, default=20)
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime intra-op threads')
    return parser.parse_args(argv)


def onnx_models(entries):
    """``(name, path)`` of every ``--onnx NAME=PATH``, each checked to be a SceneSeg graph."""
    models = []
    for entry in entries:
        name, sep, path = entry.partition('=')
        if not sep or not name or not path:
            raise UserError(f'--onnx takes NAME=PATH, got {entry!r}')
        check_input_file(path, f'--onnx {name}')
        check_sceneseg_onnx(path)
        models.append((name, path))
    return models


def model_list(args, build_model):
    models = [('PyTorch float', args.checkpoint, lambda: torch_runner(build_model, args.checkpoint))
              ]
    if args.quantized_checkpoint:
        models.append(('PyTorch INT8 (fake-quant)', args.quantized_checkpoint,
                       lambda: torch_runner(build_model, args.quantized_checkpoint)))
    for name, path in onnx_models(args.onnx):
        models.append((name, path, lambda path=path: onnx_runner(path, args.threads)))
    return models


def main(argv=None) -> int:
    args = parse_args(argv)

    def run():
        cfg = read_config(args.config, 'config', ('model', 'val_dataloader', 'val_evaluator'))
        check_input_file(args.checkpoint, '--checkpoint')
        if args.quantized_checkpoint:
            check_input_file(args.quantized_checkpoint, '--quantized-checkpoint')
        check_positive(args, 'images_per_dataset', 'latency_runs')
        check_output_dir(args.work_dir, '--work-dir')
        init_default_scope(cfg.get('default_scope', 'mmengine'))
        preprocessor = MODELS.build(cfg.model).data_preprocessor

        def preprocess(batch):
            return preprocessor(batch, False)['inputs'].numpy()

        models = model_list(args, lambda: MODELS.build(cfg.model))
        loader_cfg = cfg.val_dataloader.copy()
        loader_cfg.batch_size = 1
        report = benchmark(models, preprocess, Runner.build_dataloader(loader_cfg, seed=0),
                           cfg.val_evaluator, args.work_dir, args.images_per_dataset,
                           args.latency_runs)
        print(open(report['report_files'][1]).read())

    return run_tool(run)


if __name__ == '__main__':
    sys.exit(main())
