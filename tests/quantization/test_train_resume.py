"""tools/train.py's resume rule on the DemoNet QAT config, every combination, and a QAT run
killed (SIGKILL) again and again, during checkpoint writes too, then resumed."""
import glob
import os.path as osp
import random
import shutil
import time

import pytest

from quantization import last_complete_checkpoint
from quantization.resume import is_complete_checkpoint
from tests.resume_checks import ROOT, assert_same_training_state, kill_when, run
from tools.train import main as train_main

FLOAT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes.py')
QAT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'demonet_shapes_qat.py')
SMALL = [
    'train_dataloader.dataset.num_samples=64', 'train_dataloader.batch_size=16',
    'val_dataloader.dataset.num_samples=32', 'train_cfg.val_interval=100',
    'default_hooks.checkpoint.max_keep_ckpts=-1'
]


@pytest.fixture(scope='module')
def float_checkpoint(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('float'))
    assert train_main([
        FLOAT_CONFIG, '--work-dir', work_dir, '--cfg-options', *SMALL, 'train_cfg.max_epochs=1'
    ]) == 0
    return osp.join(work_dir, 'epoch_1.pth')


def qat(work_dir, *options, epochs=2):
    return train_main([
        QAT_CONFIG, '--work-dir', str(work_dir), *options, '--cfg-options', *SMALL,
        f'train_cfg.max_epochs={epochs}'
    ])


def test_resume_rule_every_combination(float_checkpoint, tmp_path, capsys):
    # Reference: two epochs from the float checkpoint, never interrupted.
    assert qat(tmp_path / 'straight', '--load-from', float_checkpoint) == 0
    reference = str(tmp_path / 'straight' / 'epoch_2.pth')
    assert 'starting from' in capsys.readouterr().out

    # Nothing to start from: refused, one line, before any training (no work dir written).
    for options in ([], ['--resume']):
        assert qat(tmp_path / 'none', *options) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and 'no trained weights to start from' in err[0]
        assert 'pass --load-from FLOAT.pth' in err[0]
    assert not osp.exists(tmp_path / 'none')

    # --resume with nothing in the work dir starts from --load-from and says so.
    fresh = tmp_path / 'fresh'
    assert qat(fresh, '--resume', '--load-from', float_checkpoint) == 0
    assert f'nothing to resume in {fresh}' in capsys.readouterr().out
    assert_same_training_state(reference, str(fresh / 'epoch_2.pth'))

    # A work dir holding epoch 1 of the run (as a kill after epoch 1 leaves it): --resume
    # continues it, with or without --load-from (which MMEngine alone would load instead,
    # restarting the schedule from the float weights).
    for name, options in (('with_load_from', ['--load-from', float_checkpoint]),
                          ('without', [])):
        work_dir = tmp_path / name
        work_dir.mkdir()
        shutil.copy(tmp_path / 'straight' / 'epoch_1.pth', work_dir / 'epoch_1.pth')
        assert qat(work_dir, '--resume', *options) == 0
        out = capsys.readouterr().out
        assert f'resuming from {work_dir / "epoch_1.pth"}, the last complete checkpoint' in out
        assert_same_training_state(reference, str(work_dir / 'epoch_2.pth'))

    # An explicit --resume CKPT; a truncated newer checkpoint is never picked.
    explicit = tmp_path / 'explicit'
    assert qat(explicit, '--resume', str(tmp_path / 'straight' / 'epoch_1.pth')) == 0
    assert_same_training_state(reference, str(explicit / 'epoch_2.pth'))
    truncated = tmp_path / 'without' / 'epoch_3.pth'
    truncated.write_bytes((tmp_path / 'without' / 'epoch_2.pth').read_bytes()[:4096])
    (tmp_path / 'without' / 'last_checkpoint').write_text(str(truncated))
    assert last_complete_checkpoint(str(tmp_path / 'without')) == str(
        tmp_path / 'without' / 'epoch_2.pth')


def test_qat_killed_repeatedly_resumes_to_the_uninterrupted_weights(float_checkpoint, tmp_path):
    epochs = 4
    argv = [
        QAT_CONFIG, '--load-from', float_checkpoint, '--resume', '--cfg-options', *SMALL,
        f'train_cfg.max_epochs={epochs}', 'default_hooks.checkpoint.max_keep_ckpts=2',
        'train_dataloader.dataset.num_samples=512'
    ]
    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
    run(['tools/train.py', *argv, '--work-dir', str(straight)])
    final = f'epoch_{epochs}.pth'
    # One epoch plus its checkpoint, without the start-up: between the last two checkpoints.
    epoch_seconds = (osp.getmtime(straight / final)
                     - osp.getmtime(straight / f'epoch_{epochs - 1}.pth'))

    def writing(since):  # a checkpoint's temporary file of this run exists: mid-write
        for path in glob.glob(str(interrupted / '*.pth.tmp')):
            try:
                if osp.getmtime(path) >= since:
                    return True
            except FileNotFoundError:  # renamed meanwhile
                pass
        return False

    # Kills alternate: while a checkpoint is being written (the run loses that epoch), then at a
    # random moment of the epoch after the next checkpoint, at the latest while the following
    # checkpoint is written (the run keeps exactly one epoch). Every write lasts 0.5 s or more
    # (tests/slow_fsync_train.py), so the polling catches it, and each mid-write kill finds a
    # checkpoint left to write however fast or loaded the machine is.
    rng = random.Random(0)
    mid_write_kills = 0
    for attempt in range(6):
        last = last_complete_checkpoint(str(interrupted))
        done = epoch_of(last) if last else 0
        started = time.time()
        if attempt % 2 == 0:
            mid_write_kills += kill_when(['tests/slow_fsync_train.py', *argv, '--work-dir',
                                          str(interrupted)], lambda: writing(started))
        else:
            delay, saved_at = rng.uniform(0.0, 1.0) * epoch_seconds, []

            def into_next_epoch():
                if not saved_at and osp.isfile(interrupted / f'epoch_{done + 1}.pth'):
                    saved_at.append(time.time())
                return bool(saved_at) and (time.time() - saved_at[0] > delay
                                           or writing(saved_at[0]))

            kill_when(['tests/slow_fsync_train.py', *argv, '--work-dir', str(interrupted)],
                      into_next_epoch)
            assert epoch_of(last_complete_checkpoint(str(interrupted))) == done + 1
        # Whatever the moment, every file under a final name is a complete checkpoint, and the
        # next start point is the newest of them (never random weights, never an older one).
        for path in glob.glob(str(interrupted / 'epoch_*.pth')):
            assert is_complete_checkpoint(path), path
        now = last_complete_checkpoint(str(interrupted))
        if last is not None:
            assert now is not None and epoch_of(now) >= epoch_of(last)
    assert mid_write_kills == 3
    out = run(['tools/train.py', *argv, '--work-dir', str(interrupted)])
    assert 'resuming from' in out or osp.isfile(interrupted / final)
    assert_same_training_state(str(straight / final), str(interrupted / final))
    assert not glob.glob(str(interrupted / '*.tmp'))  # a killed writer's leftovers are removed


def epoch_of(path: str) -> int:
    return int(osp.basename(path).split('_')[1].split('.')[0])
