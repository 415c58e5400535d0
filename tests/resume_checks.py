"""Shared by the kill-and-resume tests: run a tool as a real subprocess, SIGKILL it at a chosen
moment, and compare two training checkpoints bit for bit."""
import copy
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time
from typing import Callable, List, Optional

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def start(argv: List[str], env: Optional[dict] = None) -> subprocess.Popen:
    """``python argv...`` from the repository root (``env`` added to the environment), stdout
    and stderr merged, line by line."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run(argv: List[str], timeout: float = 300, env: Optional[dict] = None) -> str:
    """Run to completion; returns the output, failing the test on a non-zero exit."""
    process = start(argv, env)
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def kill_at_line(argv: List[str], pattern: str, timeout: float = 300) -> str:
    """Run until a line matches ``pattern``, then SIGKILL; returns the output so far."""
    process = start(argv)
    lines, deadline = [], time.time() + timeout
    for line in process.stdout:
        lines.append(line)
        if re.search(pattern, line):
            process.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline, 'no line matched ' + pattern
    process.wait()
    assert process.returncode == -signal.SIGKILL, ''.join(lines)[-3000:]
    return ''.join(lines)


def kill_when(argv: List[str], condition: Callable[[], bool], timeout: float = 300) -> bool:
    """Run until ``condition()`` holds (polled every 2 ms), then SIGKILL. Returns False when the
    process ended first."""
    process = start(argv)
    deadline = time.time() + timeout
    while process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            process.stdout.close()
            return True
        assert time.time() < deadline, 'the condition never held'
        time.sleep(0.002)
    process.stdout.close()
    return False


def training_state(path: str) -> dict:
    """What must be bit-identical between an interrupted and an uninterrupted run."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    return {key: checkpoint[key] for key in ('state_dict', 'optimizer', 'param_schedulers')
            if key in checkpoint}


def differences(a, b, prefix: str = '') -> List[str]:
    """Paths where two nested checkpoint structures differ (tensors compared bit for bit)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
        return [] if same else [prefix]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f'{prefix} keys']
        return [d for key in a for d in differences(a[key], b[key], f'{prefix}.{key}')]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f'{prefix} length']
        return [d for i, (x, y) in enumerate(zip(a, b))
                for d in differences(x, y, f"{prefix}[{i}]")]
    return [] if a == b else [prefix]


def assert_same_training_state(path_a: str, path_b: str, min_tensors: Optional[int] = None):
    state_a, state_b = training_state(path_a), training_state(path_b)
    diff = differences(state_a, state_b)
    assert not diff, f'{len(diff)} entries differ, e.g. {diff[:5]}'
    if min_tensors is not None:
        assert len(state_a['state_dict']) >= min_tensors


def qat_cli_run(tool: str, fixture: dict, tmp_path, epochs: int) -> List[str]:
    """The argv of ``tool qat`` on a tiny-data fixture's config, logging every iteration (so a
    kill can land mid-epoch); ``--output`` left to the caller."""
    cfg = copy.deepcopy(fixture['cfg'])  # the fixture is shared by the session
    cfg.default_hooks.logger.interval = 1
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    return [
        tool, 'qat', '--config', config, '--checkpoint', fixture['checkpoint'],
        '--calib-batches', '1', '--epochs', str(epochs)
    ]
