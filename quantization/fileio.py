"""Writing artifacts without losing work: a temporary name renamed when complete, output paths
checked before heavy work starts, and OSErrors that say which path and why.

``atomic_output`` is the one temp-file-and-rename of the toolkit; ``AtomicLocalBackend`` gives
MMEngine's checkpoint writes the same guarantee (``backend_args=dict(backend='atomic_local')``).
"""
import errno
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import Iterator, List

from mmengine.fileio import LocalBackend, register_backend

_REASONS = {
    errno.EROFS: 'read-only file system',
    errno.ENOSPC: 'no space left on device',
    errno.EDQUOT: 'disk quota exceeded',
    errno.EACCES: 'permission denied',
    errno.EPERM: 'operation not permitted',
    errno.EISDIR: 'it is a directory',
    errno.ENOTDIR: 'a parent is not a directory',
    errno.ENOENT: 'no such file or directory',
}


class OutputError(OSError):
    """An artifact cannot be written; ``str(err)`` names the path and the reason."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.errno = code


def os_error_reason(err: OSError) -> str:
    """Why ``err`` happened, in words: 'read-only file system', 'no space left on device', ..."""
    return _REASONS.get(err.errno) or (err.strerror or str(err))


def _existing_ancestor(path: str) -> str:
    parent = osp.dirname(osp.abspath(path))
    while not osp.exists(parent):
        parent = osp.dirname(parent)
    return parent


def _probe_writable(folder: str, what: str):
    if not osp.isdir(folder):
        raise OutputError(f'{what}: {folder} is not a directory', errno.ENOTDIR)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OutputError(f'{what}: cannot write in {folder}: {os_error_reason(err)}',
                          err.errno) from err


def check_output_file(path: str, kind: str = 'output') -> None:
    """Refuse, before any work, an output file that cannot be written: an existing directory, or
    a path whose nearest existing folder is not writable (probed with a temporary file). Creates
    nothing."""
    if osp.isdir(path):
        raise OutputError(f'{kind} {path} is a directory; give a file name', errno.EISDIR)
    _probe_writable(_existing_ancestor(path), f'{kind} {path}')


def check_output_dir(path: str, kind: str = 'work dir') -> None:
    """Refuse, before any work, an output folder that is a file or cannot be created or written.
    Creates nothing."""
    if osp.exists(path) and not osp.isdir(path):
        raise OutputError(f'{kind} {path} is a file, not a directory', errno.ENOTDIR)
    _probe_writable(path if osp.isdir(path) else _existing_ancestor(path), f'{kind} {path}')


def _make_parents(path: str) -> List[str]:
    """Create the missing folders above ``path``; returns them, deepest first."""
    created, folder = [], osp.dirname(osp.abspath(path))
    while not osp.exists(folder):
        created.append(folder)
        folder = osp.dirname(folder)
    for folder in reversed(created):
        os.mkdir(folder)
    return created


def _remove_empty(folders: List[str]):
    for folder in folders:  # deepest first
        try:
            os.rmdir(folder)
        except OSError:
            return


@contextmanager
def atomic_output(path: str, suffix: str = '') -> Iterator[str]:
    """Yield ``path.tmp<suffix>`` to write; rename it to ``path`` when the block completes.

    On any error the temporary file and the folders this call created are removed, nothing is
    left under ``path``, and an OSError becomes :class:`OutputError` naming ``path`` and the
    reason (read-only, no space, is a directory). ``suffix`` keeps an extension that a writer
    checks (``'.onnx'``, ``'.png'``).
    """
    tmp_path = f'{path}.tmp{suffix}'
    created: List[str] = []
    done = False
    try:
        if osp.isdir(path):
            raise OutputError(f'cannot write {path}: it is a directory', errno.EISDIR)
        created = _make_parents(path)
        yield tmp_path
        os.replace(tmp_path, path)
        done = True
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(f'cannot write {path}: {os_error_reason(err)}', err.errno) from err
    finally:
        if osp.lexists(tmp_path):
            os.remove(tmp_path)
        if not done:
            _remove_empty(created)


def write_bytes_atomic(path: str, content: bytes) -> None:
    """Write ``content`` to ``path`` through :func:`atomic_output`, flushed to disk first."""
    with atomic_output(path) as tmp_path, open(tmp_path, 'wb') as output:
        output.write(content)
        output.flush()
        os.fsync(output.fileno())


def write_text_atomic(path: str, text: str) -> None:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode('utf-8'))


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose ``put`` / ``put_text`` write through
    :func:`atomic_output`: a killed writer never leaves a partial file under the final name."""

    def put(self, obj: bytes, filepath) -> None:
        write_bytes_atomic(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_bytes_atomic(str(filepath), obj.encode(encoding))


register_backend('atomic_local', AtomicLocalBackend, force=True)
