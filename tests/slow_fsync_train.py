"""``tools/train.py`` with every ``os.fsync`` 0.5 s slower, for the kill test: a checkpoint
write (bytes written to the temporary name, not yet renamed) lasts long enough to be caught."""
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
_fsync = os.fsync


def slow_fsync(fd):
    time.sleep(0.5)
    _fsync(fd)


os.fsync = slow_fsync

from tools.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
