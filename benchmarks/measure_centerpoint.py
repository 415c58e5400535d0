"""CenterPoint's headline table with error bars, on an evaluation set sized for the goals.

On the shipped small CenterPoint: float, PTQ with every amax method (one calibration pass), QAT
as the demo runs it (5 epochs at 1e-4) for several training seeds, and the first seed's Q/DQ
split in ONNX Runtime (graph as written and INT8 kernels), all scored on the same frames: the
demo's 50 validation scenes, or ``--test-scenes N`` scenes of a separate test split generated
once into the data root. Every figure has its 95 % bootstrap interval and every difference is
paired on the same frames; the table gives each difference's standard error, the frames its
goal would need (standard error a third of the goal) and whether the goal is met, missed or
undecided within the interval.

    python benchmarks/measure_centerpoint.py [--test-scenes 1000] [--seeds 0 1 2]
"""
import os.path as osp
import pickle
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

import apis  # noqa: E402
from projects.CenterPoint.data.synthetic_lidar import write_dataset  # noqa: E402
from projects.CenterPoint.quantization.adapter import CENTERPOINT  # noqa: E402
from benchmarks import headline  # noqa: E402
from benchmarks.headline import goal_row  # noqa: E402
from quantization.bootstrap import Interval  # noqa: E402
from tools.centerpoint_demo import (CONFIG, DEPLOY_CONFIG, METHODS, SCENES,  # noqa: E402
                                    SHIPPED_CHECKPOINT, ensure_data)

KEY = CENTERPOINT.metric_key
#: the goals: (lowest, highest) allowed difference in mAP points
PTQ_GOAL, QAT_GOAL, ONNX_GOAL = (-0.5, None), (-0.1, None), (-0.1, 0.1)


def ensure_test_split(cfg: Config, scenes: int) -> str:
    """``infos_test.pkl`` with ``scenes`` scenes numbered after train and val (written once)."""
    root = cfg.test_dataloader.dataset.data_root
    path = osp.join(root, 'infos_test.pkl')
    if osp.isfile(path) and len(pickle.load(open(path, 'rb'))['data_list']) == scenes:
        print(f'using the {scenes} test scenes in {path}')
        return 'infos_test.pkl'
    print(f'writing {scenes} test scenes to {root} (about {scenes * 0.2 / 60:.0f} min)', flush=True)
    write_dataset(root, {**SCENES, 'test': scenes}, seed=0, only=['test'])
    return 'infos_test.pkl'


def main(argv=None) -> int:
    parser = headline.parser(__doc__, 5, 1e-4, 'work_dirs/measure_centerpoint')
    parser.add_argument('--test-scenes', type=int, default=0,
                        help='score on a separate test split of N scenes (0: the 50 val scenes)')
    args = parser.parse_args(argv)
    started = time.time()
    cfg = Config.fromfile(CONFIG)
    ensure_data(cfg)
    if args.test_scenes:
        cfg.test_dataloader.dataset.ann_file = ensure_test_split(cfg, args.test_scenes)
    quiet = {'log_level': 'WARNING'}
    print('==> float and PTQ', flush=True)
    ptq = apis.ptq(cfg, SHIPPED_CHECKPOINT, CENTERPOINT, osp.join(args.work_dir, 'ptq.pth'),
                   METHODS, 16, cfg_options=quiet)
    frames = ptq.intervals.frames
    metric, difference = ptq.intervals.metric, ptq.intervals.difference
    rows = [goal_row('float', metric['float'][KEY], None)]
    for method in METHODS:
        name = f'PTQ ({method})'
        goal = PTQ_GOAL if method == 'mse' else (None, None)
        rows.append(goal_row(name + (', the recipe' if method == 'mse' else ''),
                             metric[name][KEY], difference[name][KEY], 'float', goal, frames))
    qat_runs = []
    for seed in args.seeds:
        print(f'==> QAT, seed {seed}', flush=True)
        qat = apis.qat(cfg, SHIPPED_CHECKPOINT, CENTERPOINT,
                       osp.join(args.work_dir, f'qat_seed{seed}'), args.epochs, args.lr,
                       calib_batches=16, seed=seed, cfg_options=quiet)
        qat_runs.append(qat)
        rows.append(goal_row(f'QAT {args.epochs} epochs, lr {args.lr:g}, seed {seed}',
                             qat.intervals.metric[qat.name][KEY],
                             qat.intervals.difference[qat.name][KEY], 'float', QAT_GOAL, frames))
    print(f'==> deploy the seed-{args.seeds[0]} QAT model, ONNX Runtime on the same frames',
          flush=True)
    batch = cfg.test_dataloader.batch_size
    report = apis.deploy(DEPLOY_CONFIG, cfg, qat_runs[0].checkpoint,
                         osp.join(args.work_dir, 'deploy'), cfg_options={
                             'verification.dataloader': 'test_dataloader',
                             'verification.num_batches': -(-frames // batch)
                         })
    intervals = report['targets']['tensorrt']['intervals']
    for source, label in (('onnxruntime_unfused', 'graph as written'),
                          ('onnxruntime', 'INT8 kernels')):
        rows.append(goal_row(f'QAT seed {args.seeds[0]}, ONNX Runtime, {label}',
                             Interval(**intervals['metric'][source][KEY]),
                             Interval(**intervals['difference'][source][KEY]), 'PyTorch QAT',
                             ONNX_GOAL, frames))
    minutes = (time.time() - started) / 60
    qat_maps = [run.metrics[KEY] for run in qat_runs]
    text = headline.write_results(
        args.work_dir, f'CenterPoint INT8 on {frames} synthetic scenes (mAP, %)', rows,
        [headline.spread('QAT mAP', qat_maps), '',
         f'95% bootstrap intervals ({ptq.intervals.rounds} draws), differences paired on the '
         f'same frames; {minutes:.0f} min.'],
        {'frames': frames, 'qat_map': qat_maps, 'seeds': args.seeds, 'minutes': minutes})
    print('\n' + text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
