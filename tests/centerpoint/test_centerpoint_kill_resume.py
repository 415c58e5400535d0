"""CenterPoint QAT through the CLI, killed with SIGKILL mid-epoch and resumed: bit-identical to
a run that was never interrupted, random augmentation (rotation, scaling, flips, point shuffle)
included."""
import os.path as osp

from tests.resume_checks import assert_same_training_state, kill_at_line, qat_cli_run, run


def test_qat_killed_mid_epoch_resumes_bit_exactly(tiny, tmp_path):
    qat = qat_cli_run('tools/centerpoint_quantization.py', tiny, tmp_path, epochs=3)
    straight, interrupted = str(tmp_path / 'straight'), str(tmp_path / 'interrupted')
    run(qat + ['--output', straight])

    # --resume on an empty work dir starts from --checkpoint and says so
    first = kill_at_line(qat + ['--output', interrupted, '--resume'], r'Epoch\(train\)\s*\[2\]\[1/')
    assert f'nothing to resume in {interrupted}' in first and 'starting from' in first
    assert osp.isfile(osp.join(interrupted, 'epoch_1.pth'))
    assert not osp.exists(osp.join(interrupted, 'epoch_2.pth'))

    resumed = run(qat + ['--output', interrupted, '--resume'])
    assert f'resuming from {osp.join(interrupted, "epoch_1.pth")}' in resumed
    assert 'calibrating' not in resumed  # the amax came back with the checkpoint
    assert_same_training_state(osp.join(straight, 'epoch_3.pth'),
                               osp.join(interrupted, 'epoch_3.pth'), min_tensors=100)
