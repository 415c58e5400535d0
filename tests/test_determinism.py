"""The same command gives the same files and the same table: PTQ and QAT of CenterPoint (random
augmentation, shuffling, calibration) run twice as subprocesses with different hash seeds."""
import hashlib
import io

import torch

from tests.resume_checks import run, training_state


def sha256(path: str) -> str:
    with open(path, 'rb') as file:
        return hashlib.sha256(file.read()).hexdigest()


def content_sha256(path: str) -> str:
    """Hash of what training produced (weights, amax, optimizer, schedulers), without the
    checkpoint's meta, which holds the run's start time and work dir by MMEngine's design."""
    buffer = io.BytesIO()
    torch.save(training_state(path), buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def table_lines(output: str) -> list:
    return [line for line in output.splitlines() if line.startswith('|') or 'bootstrap' in line]


def test_same_command_same_files_under_different_hash_seeds(tiny, tmp_path):
    common = ['tools/centerpoint_quantization.py', '{verb}', '--config', tiny['config'],
              '--checkpoint', tiny['checkpoint'], '--calib-batches', '2', '--device', 'cpu']
    runs = []
    for hash_seed in ('1', '2'):
        out = tmp_path / f'hashseed{hash_seed}'
        ptq = [a.format(verb='ptq') for a in common] + [
            '--method', 'mse', 'max', '--output', str(out / 'ptq.pth')]
        qat = [a.format(verb='qat') for a in common] + [
            '--epochs', '2', '--output', str(out / 'qat')]
        env = {'PYTHONHASHSEED': hash_seed}
        runs.append({
            'ptq_output': run(ptq, env=env),
            'qat_output': run(qat, env=env),
            'ptq_files': [sha256(out / f'ptq_{method}.pth') for method in ('mse', 'max')],
            'qat_state': content_sha256(str(out / 'qat' / 'epoch_2.pth')),
        })
    first, second = runs
    assert first['ptq_files'] == second['ptq_files']  # byte for byte
    assert first['qat_state'] == second['qat_state']
    # the comparison sees a change: another training seed gives other weights
    reseeded = tmp_path / 'seed1'
    run([a.format(verb='qat') for a in common] +
        ['--epochs', '2', '--seed', '1', '--output', str(reseeded)])
    assert content_sha256(str(reseeded / 'epoch_2.pth')) != first['qat_state']
    for kind in ('ptq_output', 'qat_output'):
        lines = table_lines(first[kind])
        assert len(lines) >= 4 and lines == table_lines(second[kind])
