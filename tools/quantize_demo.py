"""End-to-end INT8 demo on generated data (no downloads).

Trains DemoNet on generated shape images (MMEngine Runner), then: PTQ with every amax method,
layer sensitivity with a greedy skip list, QAT with QATHook, and the QAT model exported to a
Q/DQ ONNX file run in ONNX Runtime's INT8 kernels. Prints float vs INT8 accuracy and top-1
agreement with the float model, all measured on the same validation images, and writes
results.json, results.md, sensitivity.csv and sensitivity.png into the work dir.

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

from deployment import OnnxRuntimeModel, export_onnx  # noqa: E402
from quantization.markdown import markdown_table as table_of  # noqa: E402
from quantization import (  # noqa: E402
    QuantRecipe, evaluate_model, greedy_skip_search, layer_sensitivity, load_checkpoint_file,
    load_state_dict_strict, plot_sensitivity, quantize_and_calibrate, save_sensitivity_csv)
from deployment.verify import write_text_files  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402
from apis.user_input import check_positive  # noqa: E402
from tools.demo_utils import step, train  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FLOAT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py')
QAT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes_qat.py')
METRIC = 'shapes/accuracy'


def float_model(cfg: Config, checkpoint: str) -> torch.nn.Module:
    model = MODELS.build(cfg.model)
    load_state_dict_strict(model, load_checkpoint_file(checkpoint)['state_dict'], checkpoint)
    return model.eval()


@torch.no_grad()
def logits_of(predict, loader) -> torch.Tensor:
    return torch.cat([torch.as_tensor(predict(batch['inputs'])) for batch in loader])


def row(name: str,
        logits: torch.Tensor,
        labels: torch.Tensor,
        float_logits: torch.Tensor,
        note: str = '') -> dict:
    predictions = logits.argmax(1)
    return {
        'model': name,
        'accuracy': 100.0 * (predictions == labels).float().mean().item(),
        'agreement': 100.0 * (predictions == float_logits.argmax(1)).float().mean().item(),
        'logit_error': (logits - float_logits).abs().mean().item(),
        'note': note,
    }


def markdown_table(rows: list) -> str:
    return table_of(('model', 'val accuracy (%)', 'top-1 agreement with float (%)',
                     'mean abs logit error vs float', 'note'),
                    [(r['model'], f"{r['accuracy']:.2f}", f"{r['agreement']:.2f}",
                      f"{r['logit_error']:.4f}", r['note']) for r in rows], 'lrrrl')


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
    cfg = Config.fromfile(FLOAT_CONFIG)
    train_loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    val_loader = Runner.build_dataloader(cfg.val_dataloader, seed=0)
    labels = torch.cat([torch.as_tensor(batch['labels']) for batch in val_loader])

    float_dir = osp.join(args.work_dir, 'float')
    float_ckpt = osp.join(float_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    if osp.isfile(float_ckpt):
        step(f'float model: reusing {float_ckpt}')
    else:
        step(f'training the float model ({cfg.train_cfg.max_epochs} epochs on '
             f'{cfg.train_dataloader.dataset.num_samples} generated images)')
        train(FLOAT_CONFIG, float_dir, log_level='WARNING')
    model = float_model(cfg, float_ckpt)
    float_logits = logits_of(model, val_loader)
    rows = [row('float (PyTorch)', float_logits, labels, float_logits)]

    step(f'PTQ: calibrating on {args.calib_batches} training batches with each amax method')
    for method in ('max', 'percentile', 'mse', 'entropy'):
        model = float_model(cfg, float_ckpt)
        quantize_and_calibrate(
            model, QuantRecipe(), train_loader, args.calib_batches, method, progress=False)
        rows.append(
            row(f'PTQ {method}', logits_of(model, val_loader), labels, float_logits,
                'histogram + ' + method if method != 'max' else 'running max'))
        print(f"    {method:<10} accuracy {rows[-1]['accuracy']:.2f} %", flush=True)

    step('layer sensitivity of the MSE-calibrated model')
    model = float_model(cfg, float_ckpt)
    quantize_and_calibrate(
        model, QuantRecipe(), train_loader, args.calib_batches, 'mse', progress=False)

    def accuracy(m):
        return evaluate_model(m, val_loader, cfg.val_evaluator)[METRIC]

    report = layer_sensitivity(model, accuracy)
    save_sensitivity_csv(report, osp.join(args.work_dir, 'sensitivity.csv'))
    plot_sensitivity(report, osp.join(args.work_dir, 'sensitivity.png'), 'accuracy')
    for rank, layer in enumerate(report.top(5), 1):
        print(f'    {rank}. {layer.layer:<12} only this layer INT8: {layer.only_quantized:.2f} %'
              f'   all but this layer: {layer.all_but:.2f} %')
    search = greedy_skip_search(model, accuracy, [r.layer for r in report.layers], args.budget,
                                report.float_metric)
    print(f'    skip list for a budget of {args.budget} points: {search.skip_layers or "none"}')
    if search.skip_layers:
        model = float_model(cfg, float_ckpt)
        quantize_and_calibrate(
            model,
            QuantRecipe(skip_layers=search.skip_layers),
            train_loader,
            args.calib_batches,
            'mse',
            progress=False)
        rows.append(
            row('PTQ mse + skip list', logits_of(model, val_loader), labels, float_logits,
                'float: ' + ', '.join(search.skip_layers)))

    qat_cfg = Config.fromfile(QAT_CONFIG)
    step(f'QAT: {qat_cfg.train_cfg.max_epochs} epochs with QATHook from the float checkpoint')
    qat_runner = train(
        QAT_CONFIG, osp.join(args.work_dir, 'qat'), load_from=float_ckpt, log_level='WARNING')
    qat_model = qat_runner.model.eval()
    qat_logits = logits_of(qat_model, val_loader)
    rows.append(
        row('QAT (PyTorch fake-quant)', qat_logits, labels, float_logits,
            f'{qat_cfg.train_cfg.max_epochs} epochs, lr 10x below float'))

    step('export: QAT model to Q/DQ ONNX, run in ONNX Runtime (INT8 kernels)')
    onnx_path = export_onnx(
        qat_model, (torch.rand(1, 3, 32, 32), ),
        osp.join(args.work_dir, 'demonet_qat_qdq.onnx'), ['inputs'], ['logits'],
        dynamic_axes={
            'inputs': {
                0: 'batch'
            },
            'logits': {
                0: 'batch'
            }
        })
    session = OnnxRuntimeModel(onnx_path)
    onnx_logits = logits_of(lambda x: session.run({'inputs': x.numpy()})['logits'], val_loader)
    rows.append(
        row('QAT Q/DQ ONNX in ONNX Runtime', onnx_logits, labels, float_logits,
            f'max |ONNX - PyTorch| logit {(onnx_logits - qat_logits).abs().max():.2e}'))

    table = markdown_table(rows)
    write_text_files(
        args.work_dir, {
            'results.json':
            json.dumps(
                {
                    'rows': rows,
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
          f'{osp.basename(onnx_path)}')


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: demo(args))


if __name__ == '__main__':
    sys.exit(main())
