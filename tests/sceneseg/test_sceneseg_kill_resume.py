"""SceneSeg QAT through the CLI, killed with SIGKILL mid-epoch and resumed: bit-identical to a
run that was never interrupted (shuffling, stochastic depth and dropout draw random numbers)."""
import os.path as osp

from tests.resume_checks import assert_same_training_state, kill_at_line, qat_cli_run, run


def test_qat_killed_mid_epoch_resumes_bit_exactly(tiny_roads, tmp_path):
    qat = qat_cli_run('tools/sceneseg_quantization.py', tiny_roads, tmp_path, epochs=2)
    straight, interrupted = str(tmp_path / 'straight'), str(tmp_path / 'interrupted')
    run(qat + ['--output', straight])
    kill_at_line(qat + ['--output', interrupted], r'Epoch\(train\)\s*\[2\]\[2/')
    assert not osp.exists(osp.join(interrupted, 'epoch_2.pth'))
    assert 'resuming from' in run(qat + ['--output', interrupted, '--resume'])
    assert_same_training_state(osp.join(straight, 'epoch_2.pth'),
                               osp.join(interrupted, 'epoch_2.pth'), min_tensors=100)
