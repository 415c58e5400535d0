"""SceneSeg INT8 end to end on generated road scenes (no downloads).

1. Generates the synthetic road scenes (3 styles x 200, seed 0) unless they exist.
2. Takes the small SceneSeg checkpoint the repo ships (``--train``: trains it).
3. PTQ with every amax method from one calibration pass; QAT with the toolkit's defaults
   (``apis.qat``: every layer INT8, trained from the bias-corrected PTQ model with fixed ranges)
   at ``--qat-lr`` for ``--qat-epochs``, and the same training in float as a control (does QAT
   recover quantization loss or only train longer?); export through
   tools/deploy.py of the float model (float ONNX, PTQ Q/DQ ONNX) and of the QAT model (Q/DQ
   ONNX), both placements; the benchmark (PyTorch float, QAT fake-quant, every ONNX model:
   latency, size, memory, mIoU per dataset, agreement with float, prediction PNGs).
4. Prints the mIoU table (float vs PTQ vs QAT, same validation images) and the benchmark.

    python tools/sceneseg_demo.py [--work-dir work_dirs/sceneseg_demo] [--train] [--qat-epochs 6]
        [--qat-lr 3e-4]
"""
import json
import os
from dataclasses import asdict
import os.path as osp
import sys
import time
from typing import Dict, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from torch import nn  # noqa: E402

import apis  # noqa: E402
from projects.SceneSeg.data.synthetic_roads import STYLES, write_datasets  # noqa: E402
from projects.SceneSeg.quantization.adapter import SCENESEG  # noqa: E402
from quantization import load_model_checkpoint, load_quantized_checkpoint  # noqa: E402
from quantization.bootstrap import bootstrap  # noqa: E402
from quantization.evaluation import evaluate_frames  # noqa: E402
from deployment.verify import write_text_files  # noqa: E402
from apis.tool import ToolArgumentParser, run_tool  # noqa: E402
from quantization.fileio import check_output_dir  # noqa: E402
from apis.user_input import check_positive  # noqa: E402
from quantization.markdown import markdown_table as table_of  # noqa: E402
from tools.demo_utils import interval_rows, markdown_table, step, train, train_float  # noqa: E402
from tools.deploy import main as deploy_main  # noqa: E402
from tools.sceneseg_benchmark import main as benchmark_main  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'sceneseg', 'sceneseg_synthetic_small.py')
DEPLOY_CONFIG = osp.join(ROOT, 'configs', 'sceneseg', 'deploy_sceneseg.py')
SHIPPED_CHECKPOINT = osp.join(ROOT, 'projects', 'SceneSeg', 'checkpoints',
                              'sceneseg_synthetic_small.pth')
METHODS = ('max', 'percentile', 'mse', 'entropy')
PER_DATASET = 200
KEYS = ('class_average', 'overall', 'background', 'foreground', 'road')
METRIC = SCENESEG.metric_key


def ensure_data(cfg: Config):
    root = cfg.train_dataloader.dataset.data_root
    if all(osp.isdir(osp.join(root, name, 'images')) for name in STYLES):
        print(f'using the scenes in {root}')
        return
    print(f'writing {PER_DATASET} scenes of each of {list(STYLES)} to {root}')
    write_datasets(root, {name: PER_DATASET for name in STYLES}, seed=0)


def qat_and_control(cfg: Config, checkpoint: str, work_dir: str, epochs: int, lr: float,
                    calib_batches: int = 16, seed: Optional[int] = None,
                    log_level: Optional[str] = None) -> Tuple[str, Dict[str, nn.Module]]:
    """QAT of ``checkpoint`` with the toolkit's defaults (every layer INT8 from the
    bias-corrected PTQ model) in ``work_dir/qat``, and the same training in float in
    ``work_dir/float_control``. Returns the last QAT checkpoint and the two trained models
    (``'qat'`` reloaded from that checkpoint, ``'float_control'``)."""
    options = {'log_level': log_level} if log_level else None
    qat_checkpoint = apis.qat(cfg, checkpoint, SCENESEG, osp.join(work_dir, 'qat'), epochs, lr,
                              calib_batches=calib_batches, seed=seed, bootstrap_rounds=0,
                              cfg_options=options).checkpoint
    control = train(CONFIG, osp.join(work_dir, 'float_control'), checkpoint, epochs, lr,
                    log_level=log_level, seed=seed)
    qat_model = MODELS.build(cfg.model)
    load_quantized_checkpoint(qat_model, qat_checkpoint)
    return qat_checkpoint, {'qat': qat_model, 'float_control': control.model}


def parse_args(argv=None):
    parser = ToolArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/sceneseg_demo')
    parser.add_argument('--train', action='store_true', help='train instead of the shipped model')
    parser.add_argument('--calib-batches', type=int, default=16)
    parser.add_argument('--qat-epochs', type=int, default=6)
    parser.add_argument(
        '--qat-lr', type=float, default=3e-4, help='constant AdamW lr (upstream: 1e-5)')
    return parser.parse_args(argv)


def demo(args):
    check_positive(args, 'calib_batches', 'qat_epochs')
    check_output_dir(args.work_dir, '--work-dir')
    started = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    cfg = Config.fromfile(CONFIG)

    step('1/5 synthetic road scenes')
    ensure_data(cfg)
    step('2/5 float checkpoint')
    checkpoint = train_float(CONFIG, args.work_dir) if args.train else SHIPPED_CHECKPOINT
    print(f'float checkpoint: {checkpoint}')
    step(f'3/5 PTQ, {", ".join(METHODS)} (one calibration pass, {args.calib_batches} batches)')
    ptq_result = apis.ptq(CONFIG, checkpoint, SCENESEG, osp.join(args.work_dir, 'ptq.pth'),
                          METHODS, args.calib_batches)
    print(ptq_result.table())
    step(f'4/5 QAT, every layer INT8 from the bias-corrected PTQ model, {args.qat_epochs} '
         f'epochs at lr {args.qat_lr:g}, and the same training in float (control)')
    test_loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    float_model = MODELS.build(cfg.model)
    load_model_checkpoint(float_model, checkpoint)
    evaluations = {'float': evaluate_frames(float_model, test_loader, cfg.test_evaluator)[1]}
    qat_checkpoint, trained_models = qat_and_control(cfg, checkpoint, args.work_dir,
                                                     args.qat_epochs, args.qat_lr,
                                                     args.calib_batches)
    evaluations.update({name: evaluate_frames(model, test_loader, cfg.test_evaluator)[1]
                        for name, model in trained_models.items()})
    trained = asdict(bootstrap(evaluations, [f'sceneseg/pooled/{k}' for k in KEYS], 'float'))
    step('5/5 export (float, Q/DQ for TensorRT and ONNX Runtime) and benchmark')
    onnx_models = []
    for kind, source in (('PTQ', checkpoint), ('QAT', qat_checkpoint)):
        deploy_dir = osp.join(args.work_dir, f'deploy_{kind.lower()}')
        if deploy_main([DEPLOY_CONFIG, CONFIG, source, '--work-dir', deploy_dir]) != 0:
            return 2
        if kind == 'PTQ':  # exported from the float checkpoint: the float reference
            onnx_models.append(f'ONNX float={osp.join(deploy_dir, "float.onnx")}')
        for target in ('onnxruntime', 'tensorrt'):
            onnx_models.append(f'ONNX INT8 {kind} ({target} target)='
                               f'{osp.join(deploy_dir, f"int8_{target}.onnx")}')
    bench_dir = osp.join(args.work_dir, 'benchmark')
    if benchmark_main([
            CONFIG, '--checkpoint', checkpoint, '--quantized-checkpoint', qat_checkpoint, '--onnx',
            *onnx_models, '--work-dir', bench_dir
    ]) != 0:
        return 2

    schedule = f'{args.qat_epochs} epochs, lr {args.qat_lr:g}'
    rows = interval_rows(asdict(ptq_result.intervals), {n: n for n, _ in ptq_result.rows},
                         KEYS, METRIC)
    rows += interval_rows(trained, {
        'qat': f'QAT ({schedule}, every layer INT8, from the bias-corrected PTQ)',
        'float_control': f'float, trained the same way without quantization ({schedule}; control)'
    }, KEYS, METRIC)
    float_average = rows[0]['class_average']
    for entry in rows:
        entry['pct_of_float'] = 100.0 * entry['class_average'] / float_average
    minutes = (time.time() - started) / 60
    text = '\n'.join([
        '# SceneSeg INT8 on the synthetic validation images (upstream mIoU, %, pooled)', '',
        markdown_table(rows, [*KEYS[1:], 'class_average [95% interval]',
                              'difference [95% interval]']), '',
        f'95% bootstrap intervals over the {ptq_result.intervals.frames} validation images (1000 '
        'draws); differences from float paired on the same images.', '',
        table_of(('model', 'class average, % of float'),
                 [(r['model'], f"{r['pct_of_float']:.2f}") for r in rows]), '',
        open(osp.join(bench_dir, 'benchmark.md')).read(), f'Total time: {minutes:.1f} min', ''
    ])
    write_text_files(args.work_dir, {
        'results.md': text,
        'results.json': json.dumps({
            'rows': rows,
            'minutes': minutes
        }, indent=2)
    })
    print('\n' + text)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: demo(args))


if __name__ == '__main__':
    sys.exit(main())
