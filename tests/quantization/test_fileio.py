"""quantization/fileio.py: atomic writes, output checks, MMEngine's atomic file backend."""
import errno
import os

import pytest
from mmengine.fileio import get_file_backend

from quantization.fileio import (AtomicLocalBackend, OutputError, atomic_output,
                                 check_output_dir, check_output_file)


def test_atomic_output_renames_when_complete_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / 'a' / 'b' / 'report.txt'
    with atomic_output(str(target)) as tmp_name:
        assert tmp_name == f'{target}.tmp'
        with open(tmp_name, 'w') as f:
            f.write('done')
        assert not target.exists()  # nothing under the final name until the block completes
    assert target.read_text() == 'done'

    fresh = tmp_path / 'new' / 'deeper' / 'x.onnx'
    with pytest.raises(RuntimeError):
        with atomic_output(str(fresh), '.onnx') as tmp_name:
            open(tmp_name, 'w').write('half')
            raise RuntimeError('exporter failed')
    assert not (tmp_path / 'new').exists()  # the folders it made are gone too

    with pytest.raises(OutputError, match=f'cannot write {fresh}: no space left on device'):
        with atomic_output(str(fresh)):
            raise OSError(errno.ENOSPC, 'No space left on device')
    with pytest.raises(OutputError, match='it is a directory'):
        with atomic_output(str(tmp_path)):
            pass


def test_output_checks_create_nothing(tmp_path):
    check_output_file(str(tmp_path / 'x' / 'y.pth'))
    check_output_dir(str(tmp_path / 'x' / 'work'))
    assert os.listdir(tmp_path) == []
    with pytest.raises(OutputError, match='is a directory; give a file name'):
        check_output_file(str(tmp_path))
    (tmp_path / 'file').write_text('')
    with pytest.raises(OutputError, match='is a file, not a directory'):
        check_output_dir(str(tmp_path / 'file'))
    with pytest.raises(OutputError, match='is not a directory'):
        check_output_file(str(tmp_path / 'file' / 'below.pth'))


def test_atomic_backend_is_what_checkpoint_hooks_get(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'abc', str(tmp_path / 'epoch_1.pth'))
    backend.put_text('epoch_1.pth', str(tmp_path / 'last_checkpoint'))
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth', 'last_checkpoint']
    assert (tmp_path / 'epoch_1.pth').read_bytes() == b'abc'
