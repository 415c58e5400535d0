"""Benchmark SceneSeg: PyTorch float vs ONNX float vs ONNX INT8 (vs the QAT model), one report.

    python tools/sceneseg_benchmark.py CONFIG --checkpoint FLOAT.pth \
        [--quantized-checkpoint QAT.pth] --onnx "ONNX float=float.onnx" \
        "ONNX INT8=int8_onnxruntime.onnx" --work-dir DIR [--images-per-dataset 3] \
        [--latency-runs 20] [--threads 0]

Writes DIR/benchmark.{md,json} and DIR/predictions/*.png (Original | GT | predictions).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import projects.SceneSeg  # noqa: E402,F401
from projects.SceneSeg.benchmark import benchmark, onnx_runner, torch_runner  # noqa: E402
from quantization.cli import print_error  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', required=True, help='float checkpoint (the reference)')
    parser.add_argument('--quantized-checkpoint', help='PTQ or QAT checkpoint (fake-quant)')
    parser.add_argument('--onnx', nargs='*', default=[], help='"NAME=PATH" ONNX models')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--images-per-dataset', type=int, default=3)
    parser.add_argument('--latency-runs', type=int, default=20)
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime intra-op threads')
    return parser.parse_args(argv)


def model_list(args, build_model):
    models = [('PyTorch float', args.checkpoint, lambda: torch_runner(build_model, args.checkpoint))
              ]
    if args.quantized_checkpoint:
        models.append(('PyTorch INT8 (fake-quant)', args.quantized_checkpoint,
                       lambda: torch_runner(build_model, args.quantized_checkpoint)))
    for entry in args.onnx:
        name, sep, path = entry.partition('=')
        if not sep or not path:
            raise ValueError(f'--onnx takes NAME=PATH, got {entry!r}')
        models.append((name, path, lambda path=path: onnx_runner(path, args.threads)))
    return models


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        paths = [args.config, args.checkpoint, args.quantized_checkpoint]
        paths += [e.partition('=')[2] or e for e in args.onnx]
        for path in filter(None, paths):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{path} does not exist')
        cfg = Config.fromfile(args.config)
        init_default_scope(cfg.get('default_scope', 'mmengine'))
        preprocessor = MODELS.build(cfg.model).data_preprocessor

        def preprocess(batch):
            return preprocessor(batch, False)['inputs'].numpy()

        loader_cfg = cfg.val_dataloader.copy()
        loader_cfg.batch_size = 1
        report = benchmark(
            model_list(args, lambda: MODELS.build(cfg.model)), preprocess,
            Runner.build_dataloader(loader_cfg, seed=0), cfg.val_evaluator, args.work_dir,
            args.images_per_dataset, args.latency_runs)
    except (FileNotFoundError, KeyError, ValueError) as err:
        return print_error(err)
    print(open(report['report_files'][1]).read())
    return 0


if __name__ == '__main__':
    sys.exit(main())
