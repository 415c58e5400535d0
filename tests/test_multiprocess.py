"""Multi-process runs from the shipped command lines: ``torchrun --nproc_per_node=2`` on the CPU
(gloo), no installed package patched. QAT through tools/train.py and the CenterPoint CLI, and
distributed sensitivity against one process."""
import csv
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.resume_checks import qat_cli_run, run
from tools.train import main as train_main

DEMO = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py')
DEMO_QAT = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes_qat.py')
# DemoNet's data has no random augmentation: 2 ranks of batch 8 see the samples 1 process sees
SMALL = [
    'train_dataloader.dataset.num_samples=64', 'train_dataloader.batch_size=8',
    'val_dataloader.dataset.num_samples=32', 'train_cfg.val_interval=100'
]


def torchrun(argv, nproc: int = 2, timeout: float = 600) -> str:
    """``torchrun --nproc_per_node=nproc argv...`` from the repository root; its output."""
    port = 29400 + os.getpid() % 500
    command = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
               f'--master_port={port}', *argv]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    done = subprocess.run(command, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    assert done.returncode == 0, done.stdout[-4000:]
    return done.stdout


def amax(state_dict: dict) -> dict:
    return {k: v for k, v in state_dict.items() if k.endswith('input_quantizer.amax')}


def assert_ranks_identical(folder) -> dict:
    ranks = [torch.load(osp.join(folder, f'rank{r}.pth'), weights_only=True) for r in range(2)]
    assert ranks[0].keys() == ranks[1].keys()
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), key
    return ranks[0]


@pytest.fixture(scope='module')
def demo_float(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('float'))
    assert train_main([DEMO, '--work-dir', work_dir, '--cfg-options', *SMALL,
                       'train_cfg.max_epochs=1']) == 0
    return osp.join(work_dir, 'epoch_1.pth')


def test_train_py_qat_on_two_cpu_processes(demo_float, tmp_path):
    options = ['--load-from', demo_float, '--cfg-options', *SMALL, 'train_cfg.max_epochs=1']
    torchrun(['tests/rank_state_run.py', str(tmp_path / 'ranks'), 'tools/train.py', DEMO_QAT,
              '--launcher', 'pytorch', '--work-dir', str(tmp_path / 'two'), *options])
    two = assert_ranks_identical(tmp_path / 'ranks')  # DDP kept the ranks in step
    run(['tests/rank_state_run.py', str(tmp_path / 'one_rank'), 'tools/train.py', DEMO_QAT,
         '--work-dir', str(tmp_path / 'one'), *options])
    one = torch.load(tmp_path / 'one_rank' / 'rank0.pth', weights_only=True)
    # 8 calibration batches over 2 ranks (4 each, batch 8) are the 8 batches of one process:
    # the calibration amax is bit-identical.
    assert len(amax(one)) >= 8
    for key, value in amax(one).items():
        assert torch.equal(value, two[key]), key
    checkpoint = torch.load(tmp_path / 'two' / 'epoch_1.pth', weights_only=True)
    assert checkpoint['meta']['calibration']['batches'] == 8


def test_amp_without_a_gpu_is_refused_and_fake_quant_runs_in_float32_under_autocast(
        demo_float, tmp_path, capsys):
    for main, argv in ((train_main, [DEMO_QAT, '--amp', '--load-from', demo_float,
                                     '--work-dir', str(tmp_path / 'amp')]), ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('error: --amp: ') and 'GPU' in err[0]
    assert not osp.exists(tmp_path / 'amp')
    # Under autocast a quantized conv sees float32 fake quantization cast to autocast's dtype.
    from quantization import CalibrationManager, QuantConv2d
    conv = QuantConv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    CalibrationManager(conv, progress=False).calibrate([x], 1, 'max')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x.bfloat16())
    with torch.no_grad():
        expected_input = conv.input_quantizer(x.bfloat16().float()).bfloat16()
        expected_weight = conv.weight_quantizer(conv.weight).bfloat16()
        expected = torch.nn.functional.conv2d(expected_input, expected_weight,
                                              conv.bias.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)


def test_centerpoint_cli_qat_on_two_cpu_processes(tiny, tmp_path):
    argv = qat_cli_run('tools/centerpoint_quantization.py', tiny, tmp_path, epochs=1)
    argv[argv.index('--calib-batches') + 1] = '2'  # one batch on each rank
    out = torchrun(['tests/rank_state_run.py', str(tmp_path / 'ranks'), *argv, '--output',
                    str(tmp_path / 'qat'), '--launcher', 'pytorch'])
    state = assert_ranks_identical(tmp_path / 'ranks')
    assert amax(state)
    assert out.count('| QAT (1 epochs') == 1  # rank 0 prints the result table
    checkpoint = torch.load(tmp_path / 'qat' / 'epoch_1.pth', weights_only=True)
    assert checkpoint['meta']['calibration']['batches'] == 2


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_distributed_sensitivity_matches_one_process(tiny, tmp_path):
    common = ['sensitivity', '--config', tiny['config'], '--checkpoint', tiny['checkpoint'],
              '--calib-batches', '2', '--method', 'max', '--layers',
              'pts_backbone.blocks.0.*', 'pts_neck.*', '--budget', '0']
    one = run(['tools/centerpoint_quantization.py', *common, '--output',
               str(tmp_path / 'one.csv')])
    two = torchrun(['tools/centerpoint_quantization.py', *common, '--output',
                    str(tmp_path / 'two.csv'), '--launcher', 'pytorch'])
    rows_one, rows_two = read_csv(tmp_path / 'one.csv'), read_csv(tmp_path / 'two.csv')
    assert len(rows_one) >= 4 and rows_one == rows_two
    skip_line = [line for line in one.splitlines() if line.startswith('suggested skip list')]
    assert skip_line and skip_line[0] in two
    assert two.count('suggested skip list') == 1
    assert osp.isfile(tmp_path / 'two.png')
    assert 'every figure over 2 test frames' in two


def test_tools_test_on_two_cpu_processes_gives_the_metrics_of_one(demo_float, tmp_path):
    argv = ['tools/test.py', DEMO, demo_float, '--cfg-options', *SMALL]
    one = run([*argv, '--work-dir', str(tmp_path / 'one')])
    two = torchrun([*argv, '--work-dir', str(tmp_path / 'two'), '--launcher', 'pytorch'])
    rows = [line for line in one.splitlines() if line.startswith('| epoch_1.pth |')]
    assert rows and all(two.count(row) == 1 for row in rows)  # rank 0 prints, same values


def test_slurm_launcher_without_cuda_reads_slurm_variables(demo_float, tmp_path):
    """``--launcher slurm`` on a CPU machine: rank and world size from SLURM_* (here one task),
    the rendezvous at MASTER_ADDR:MASTER_PORT, gloo; the run trains as without a launcher."""
    env = dict(os.environ, SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(29900 + os.getpid() % 90))
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, 'tools/train.py', DEMO_QAT, '--launcher', 'slurm', '--load-from',
         demo_float, '--work-dir', str(tmp_path), '--cfg-options', *SMALL,
         'train_cfg.max_epochs=1'], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert 'Distributed launcher: slurm' in done.stdout or 'launcher: slurm' in done.stdout
    assert osp.isfile(tmp_path / 'epoch_1.pth')
