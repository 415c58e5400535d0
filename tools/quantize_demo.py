"""End-to-end INT8 demo on generated data (no downloads), over the same API the CLIs use.

Trains DemoNet on generated shape images (MMEngine Runner), then: PTQ with every amax method
(``apis.ptq``), layer sensitivity with a greedy skip list (``apis.sensitivity``), QAT with
QATHook (``apis.qat``) and deployment of the QAT checkpoint (``apis.deploy``: float and Q/DQ
ONNX, verified in ONNX Runtime). Prints float vs INT8 accuracy, top-1 agreement with the float
model and the logit error, all on the same validation images, and writes results.{json,md},
sensitivity.{csv,png}, every checkpoint and the ONNX files into the work dir.

    python tools/quantize_demo.py [--work-dir work_dirs/demo] [--calib-batches 16]
"""
import json
import logging
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import apis  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from apis.user_input import check_positive  # noqa: E402
from deployment import OnnxRuntimeModel  # noqa: E402
from deployment.openvino_runtime import OpenVINOModel  # noqa: E402
from deployment.verify import write_text_files  # noqa: E402
from projects.Demo.adapter import DEMONET  # noqa: E402
from projects.Demo.metric import ShapeAccuracy  # noqa: E402
from quantization import load_model_checkpoint  # noqa: E402
from quantization.bootstrap import BootstrapResult, bootstrap  # noqa: E402
from quantization.evaluation import FrameResults  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402
from quantization.markdown import markdown_table as table_of  # noqa: E402
from tools.demo_utils import step, train  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py')
DEPLOY_CONFIG = osp.join(ROOT, 'configs', 'demo', 'deploy_demonet.py')
METHODS = ('max', 'percentile', 'mse', 'entropy')
METRIC = DEMONET.metric_key
QAT_EPOCHS, QAT_LR, QAT_CALIB_BATCHES = 2, 3e-4, 8
QUIET = {'log_level': 'WARNING'}  # the Runner's config dump and per-iteration lines


@torch.no_grad()
def logits_of(predict, loader) -> torch.Tensor:
    return torch.cat([torch.as_tensor(predict(batch['inputs'])) for batch in loader])


def checkpoint_logits(cfg: Config, checkpoint: str, loader) -> torch.Tensor:
    """Validation logits of a float or quantized checkpoint."""
    model = MODELS.build(cfg.model)
    load_model_checkpoint(model, checkpoint)
    return logits_of(model.eval(), loader)


def row(name: str, intervals: BootstrapResult, source: str, logits: torch.Tensor,
        float_logits: torch.Tensor, note: str = '') -> dict:
    """A table row: accuracy with its interval and its paired difference from the reference of
    ``intervals`` (the row ``source`` there), agreement and logit error against float."""
    difference = intervals.difference.get(source, {}).get(METRIC)
    return {
        'model': name,
        'accuracy': str(intervals.metric[source][METRIC]),
        'difference': f'{difference} vs {intervals.reference}' if difference else '',
        'agreement': 100.0 * (logits.argmax(1) == float_logits.argmax(1)).float().mean().item(),
        'logit_error': (logits - float_logits).abs().mean().item(),
        'note': note,
    }


def markdown_table(rows: list) -> str:
    return table_of(('model', 'val accuracy (%) [95% interval]', 'difference [95% interval]',
                     'top-1 agreement with float (%)', 'mean abs logit error vs float', 'note'),
                    [(r['model'], r['accuracy'], r['difference'], f"{r['agreement']:.2f}",
                      f"{r['logit_error']:.4f}", r['note']) for r in rows], 'lrrrrl')


def correctness(logits: torch.Tensor, labels: torch.Tensor) -> list:
    """Per-image results as ShapeAccuracy keeps them, for the bootstrap."""
    return [FrameResults(ShapeAccuracy(), (logits.argmax(1) == labels).tolist())]


def parse_args(argv=None):
    parser = ToolArgumentParser(description='INT8 quantization demo on generated data')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--calib-batches', type=int, default=16)
    parser.add_argument(
        '--budget',
        type=float,
        default=0.3,
        help='accuracy points the greedy skip search may lose against float')
    return parser.parse_args(argv)


def demo(args):
    check_positive(args, 'calib_batches')
    check_output_dir(args.work_dir, '--work-dir')
    logging.getLogger('quantization').setLevel(logging.WARNING)
    os.makedirs(args.work_dir, exist_ok=True)
    started = time.time()
    cfg = Config.fromfile(CONFIG)
    val_loader = Runner.build_dataloader(cfg.val_dataloader, seed=0)
    labels = torch.cat([torch.as_tensor(batch['labels']) for batch in val_loader])

    float_dir = osp.join(args.work_dir, 'float')
    float_ckpt = osp.join(float_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    if osp.isfile(float_ckpt):
        step(f'float model: reusing {float_ckpt}')
    else:
        step(f'training the float model ({cfg.train_cfg.max_epochs} epochs on '
             f'{cfg.train_dataloader.dataset.num_samples} generated images)')
        train(CONFIG, float_dir, log_level='WARNING')
    float_logits = checkpoint_logits(cfg, float_ckpt, val_loader)

    step(f'PTQ: one calibration pass on {args.calib_batches} training batches, every amax method')
    ptq = apis.ptq(CONFIG, float_ckpt, DEMONET, osp.join(args.work_dir, 'ptq.pth'), METHODS,
                   args.calib_batches)
    notes = {'max': 'running max'}
    rows = [row('float (PyTorch)', ptq.intervals, 'float', float_logits, float_logits)]
    for method in METHODS:
        rows.append(row(f'PTQ {method}', ptq.intervals, f'PTQ ({method})',
                        checkpoint_logits(cfg, ptq.checkpoints[method], val_loader), float_logits,
                        notes.get(method, f'histogram + {method}')))

    step('layer sensitivity of the MSE-calibrated model')
    sensitivity = apis.sensitivity(CONFIG, float_ckpt, DEMONET,
                                   osp.join(args.work_dir, 'sensitivity.csv'), args.calib_batches,
                                   budget=args.budget)
    report, search = sensitivity.report, sensitivity.search
    for rank, layer in enumerate(report.top(5), 1):
        print(f'    {rank}. {layer.layer:<12} only this layer INT8: {layer.only_quantized:.2f} %'
              f'   all but this layer: {layer.all_but:.2f} %')
    print(f'    skip list for a budget of {args.budget} points: {search.skip_layers or "none"}')
    if search.skip_layers:
        skip = apis.ptq(CONFIG, float_ckpt, DEMONET, osp.join(args.work_dir, 'ptq_skip.pth'),
                        ['mse'], args.calib_batches, skip_layers=search.skip_layers)
        rows.append(row('PTQ mse + skip list', skip.intervals, 'PTQ (mse)',
                        checkpoint_logits(cfg, skip.checkpoints['mse'], val_loader), float_logits,
                        'float: ' + ', '.join(search.skip_layers)))

    step(f'QAT: {QAT_EPOCHS} epochs with QATHook from the float checkpoint')
    qat = apis.qat(CONFIG, float_ckpt, DEMONET, osp.join(args.work_dir, 'qat'), QAT_EPOCHS,
                   QAT_LR, calib_batches=QAT_CALIB_BATCHES, cfg_options=QUIET)
    qat_logits = checkpoint_logits(cfg, qat.checkpoint, val_loader)
    rows.append(row('QAT (PyTorch fake-quant)', qat.intervals, qat.name, qat_logits, float_logits,
                    f'{QAT_EPOCHS} epochs, lr 10x below float'))

    step('deploy: the QAT checkpoint to float and Q/DQ ONNX and OpenVINO IR, verified')
    deploy_dir = osp.join(args.work_dir, 'deploy')
    deployed = apis.deploy(DEPLOY_CONFIG, CONFIG, qat.checkpoint, deploy_dir)
    artifacts = deployed['artifacts']
    runtimes = {  # target: (its runtime's model, the runtime's name)
        'tensorrt': (OnnxRuntimeModel(artifacts['int8_tensorrt.onnx']['path']), 'ONNX Runtime'),
        'onnxruntime': (OnnxRuntimeModel(artifacts['int8_onnxruntime.onnx']['path']),
                        'ONNX Runtime'),
        'openvino': (OpenVINOModel(artifacts['int8_openvino.xml']['path']), 'OpenVINO')
    }
    onnx_logits = {
        target: logits_of(lambda x, m=model: m.run({'inputs': x.numpy()})['logits'], val_loader)
        for target, (model, _) in runtimes.items()}
    versus_qat = bootstrap({'PyTorch QAT': correctness(qat_logits, labels),
                            **{t: correctness(v, labels) for t, v in onnx_logits.items()}},
                           [METRIC], reference='PyTorch QAT')
    for target, logits in onnx_logits.items():
        rows.append(
            row(f'QAT, `{target}` target in {runtimes[target][1]}', versus_qat, target, logits,
                float_logits,
                f'max abs logit error vs PyTorch QAT {(logits - qat_logits).abs().max():.2e}'))

    table = markdown_table(rows)
    write_text_files(
        args.work_dir, {
            'results.json':
            json.dumps(
                {
                    'rows': rows,
                    'frames': len(labels),
                    'sensitivity_top10': [vars(r) for r in report.top(10)],
                    'skip_layers': search.skip_layers
                },
                indent=2),
            'results.md':
            table + '\n'
        })
    step(f'results on {len(labels)} validation images ({time.time() - started:.0f} s in all)')
    print(table)
    print(f'\nwritten: {args.work_dir}/results.md, results.json, sensitivity.csv, sensitivity.png, '
          f'checkpoints, deploy/ (ONNX files, deploy_report.md)')


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: demo(args))


if __name__ == '__main__':
    sys.exit(main())
