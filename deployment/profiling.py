"""Model-time latency and peak resident memory of a runner, for benchmark reports."""
import ctypes
import gc
import os
import statistics
import threading
import time
from typing import Callable, Dict


def latency_stats(run: Callable[[], object], warmup: int = 3, runs: int = 20) -> Dict[str, float]:
    """Median, p95 and mean of ``runs`` calls of ``run`` after ``warmup`` calls, in ms.

    Only the call is timed: prepare inputs (preprocessing) before, score outputs after.
    """
    if runs < 1:
        raise ValueError(f'latency needs at least one timed run, got runs={runs}')
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(1000.0 * (time.perf_counter() - start))
    times.sort()
    return {
        'median_ms': statistics.median(times),
        'p95_ms': times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
        'mean_ms': statistics.fmean(times),
        'runs': runs
    }


def resident_bytes() -> int:
    """The process's resident set size (Linux ``/proc/self/statm``), in bytes."""
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def release_free_memory():
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so a
    later resident-size rise measures the next model, not reuse of the last one's memory."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the rise is a lower bound
        pass


class PeakMemory:
    """Samples the resident set size every ``interval`` s inside a ``with`` block; ``peak_mb``
    is the largest rise above the size at entry (model load plus runs), in MiB."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _sample(self, baseline: int):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, (resident_bytes() - baseline) / 2**20)
            time.sleep(self.interval)

    def __enter__(self) -> 'PeakMemory':
        release_free_memory()
        self._thread = threading.Thread(target=self._sample, args=(resident_bytes(), ), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False
