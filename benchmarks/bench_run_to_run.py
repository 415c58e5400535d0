"""How much the CenterPoint PTQ and QAT figures move between runs, and what moves them.

Runs the demo's ``ptq`` (MSE) and ``qat`` commands on the shipped small CenterPoint and its 50
synthetic validation scenes under several settings: the same command twice (what a re-run on
one machine gives), CPU kernels limited to AVX2 (oneDNN, MKL and ATen: what another CPU of the
same kind may pick), and one thread instead of all (another core count sums in another order).
Prints each setting's mAP with its bootstrap interval, whether the QAT weights are bit-identical
to the first run's, and their largest difference.

    python benchmarks/bench_run_to_run.py [--epochs 5] [--lr 1e-4] [--work-dir work_dirs/run_to_run]
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

from quantization.markdown import markdown_table  # noqa: E402
from tests.resume_checks import differences, training_state  # noqa: E402
from tools.centerpoint_demo import CONFIG, SHIPPED_CHECKPOINT, ensure_data  # noqa: E402

AVX2 = {'ONEDNN_MAX_CPU_ISA': 'AVX2', 'MKL_ENABLE_INSTRUCTIONS': 'AVX2',
        'ATEN_CPU_CAPABILITY': 'avx2'}
SETTINGS = {
    'default': {},
    'default, again': {},
    'kernels limited to AVX2': AVX2,
    'one thread': {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'},
}


def run(verb: list, env: dict) -> str:
    command = [sys.executable, 'tools/centerpoint_quantization.py', *verb, '--config', CONFIG,
               '--checkpoint', SHIPPED_CHECKPOINT, '--calib-batches', '16', '--device', 'cpu']
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ, **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        sys.exit(result.stdout[-3000:])
    return result.stdout


def map_cells(output: str) -> dict:
    """``{'PTQ' | 'QAT': 'mAP [low, high]'}`` from the tables a command printed."""
    cells, headers = {}, []
    for line in output.splitlines():
        cells_of_line = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if cells_of_line[0] == 'model':
            headers = cells_of_line
        elif headers and cells_of_line[0].startswith(('PTQ (mse)', 'QAT')):
            cells[cells_of_line[0][:3]] = cells_of_line[headers.index('mAP')]
    return cells


def largest_difference(path_a: str, path_b: str) -> float:
    a, b = training_state(path_a)['state_dict'], training_state(path_b)['state_dict']
    return max(((a[k].double() - b[k].double()).abs().max().item()
                for k in a if a[k].is_floating_point() and a[k].numel()), default=0.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--lr', type=float, default=1e-4)
    parser.add_argument('--work-dir', default='work_dirs/run_to_run')
    args = parser.parse_args(argv)
    ensure_data(Config.fromfile(CONFIG))
    rows, first = [], None
    for name, env in SETTINGS.items():
        folder = osp.join(args.work_dir, re.sub(r'\W+', '_', name))
        print(f'==> {name} {env or ""}', flush=True)
        cells = map_cells(run(['ptq', '--method', 'mse', '--output',
                               osp.join(folder, 'ptq.pth')], env))
        cells.update(map_cells(run(['qat', '--epochs', str(args.epochs), '--lr', str(args.lr),
                                    '--output', osp.join(folder, 'qat')], env)))
        checkpoint = osp.join(folder, 'qat', f'epoch_{args.epochs}.pth')
        first = first or checkpoint
        same = not differences(training_state(first), training_state(checkpoint))
        rows.append((name, cells.get('PTQ', '?'), cells.get('QAT', '?'), 'yes' if same else 'no',
                     f'{largest_difference(first, checkpoint):.2e}'))
    print(markdown_table(('setting', 'PTQ MSE mAP [95%]', f'QAT {args.epochs} epochs mAP [95%]',
                          'QAT weights identical to the first run', 'largest weight difference'),
                         rows, 'lrrlr'))
    print(f'torch {torch.__version__}, {os.cpu_count()} cores; 50 validation frames')
    return 0


if __name__ == '__main__':
    sys.exit(main())
