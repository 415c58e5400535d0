"""Speed-up of ``sensitivity`` shared over N processes (``torchrun ... --launcher pytorch``) vs one.

Runs ``tools/centerpoint_quantization.py sensitivity`` on the shipped small CenterPoint and its
synthetic validation scenes, 1 process and N processes interleaved over several rounds, and
prints the wall time of each whole command (start-up included), median and spread, the speed-up
and whether the CSVs are identical. Two settings: the machine's cores shared out (1 process
``OMP_NUM_THREADS=cores``, N processes ``cores / N`` each: what a CPU-only machine gains), and
one thread per process (each rank brings its own compute, as each GPU of a multi-GPU machine
does).

    python benchmarks/bench_distributed_sensitivity.py [--nproc 2] [--rounds 3] [--eval-batches 4]
"""
import argparse
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

from tools.centerpoint_demo import CONFIG, SHIPPED_CHECKPOINT, ensure_data  # noqa: E402


def command(nproc: int, output: str, args) -> list:
    verb = [
        'tools/centerpoint_quantization.py', 'sensitivity', '--config', CONFIG, '--checkpoint',
        SHIPPED_CHECKPOINT, '--calib-batches', '4', '--calib-split', 'val', '--eval-batches',
        str(args.eval_batches), '--output', output
    ]
    if nproc == 1:
        return [sys.executable, *verb]
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
            '--master_port=29611', *verb, '--launcher', 'pytorch']


def timed(nproc: int, output: str, args, threads: int) -> tuple:
    """``(seconds, output)`` of one whole command, each process on ``threads`` threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    started = time.perf_counter()
    done = subprocess.run(command(nproc, output, args), cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f'error: {nproc} process(es) failed:\n{done.stdout[-3000:]}')
    return seconds, done.stdout


def measure(args, label: str, threads_of) -> None:
    """Interleaved rounds of 1 and ``args.nproc`` processes; prints the table of one setting."""
    times = {1: [], args.nproc: []}
    with tempfile.TemporaryDirectory() as folder:
        csv = {n: osp.join(folder, f'sens_{n}.csv') for n in times}
        for index in range(args.rounds):
            for nproc in (times if index % 2 == 0 else reversed(list(times))):
                seconds, out = timed(nproc, csv[nproc], args, threads_of(nproc))
                times[nproc].append(seconds)
                print(f'{label}, round {index + 1}: {nproc} process(es) {seconds:.1f} s',
                      flush=True)
        identical = open(csv[1]).read() == open(csv[args.nproc]).read()
        layers = sum(1 for _ in open(csv[1])) - 1
    median = {n: statistics.median(t) for n, t in times.items()}
    frames = re.search(r'every figure over (\d+) test frames', out).group(1)
    print(f'\n{label}: {layers} layers, {2 * layers + 2} variants scored on {frames} validation '
          f'frames each, then the greedy skip search; {args.rounds} rounds')
    print('| processes | threads each | median s | min-max s |\n|---:|---:|---:|---:|')
    for nproc, values in times.items():
        print(f'| {nproc} | {threads_of(nproc)} | {median[nproc]:.1f} | '
              f'{min(values):.1f}-{max(values):.1f} |')
    print(f'speed-up {args.nproc} vs 1 process: {median[1] / median[args.nproc]:.2f}x; '
          f'CSV identical: {identical}\n')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--eval-batches', type=int, default=4,
                        help='validation batches (of 4 scenes) each variant is scored on')
    parser.add_argument('--cores', type=int, default=os.cpu_count())
    args = parser.parse_args()
    ensure_data(Config.fromfile(CONFIG))
    print(f'load before: {os.getloadavg()[0]:.2f} (1 min); {args.cores} cores')
    measure(args, 'cores shared out', lambda nproc: max(1, args.cores // nproc))
    measure(args, 'one thread per process', lambda nproc: 1)
    print(f'load after: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
