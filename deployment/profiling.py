"""Model-time latency, speed ratios measured interleaved, and peak resident memory of a runner,
for benchmark reports."""
import ctypes
import gc
import os
import statistics
import threading
import time
from typing import Callable, Dict, List


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


def interleaved_speedups(runs: Dict[str, Callable[[], object]], baseline: str, rounds: int = 7,
                         calls: int = 1, pause: float = 0.5,
                         clock: Callable[[], float] = time.perf_counter,
                         sleep: Callable[[float], None] = time.sleep) -> Dict[str, dict]:
    """Speed of each runner over ``baseline``, measured in rounds that visit every runner once
    (the start rotating), so a busy spell slows all of them alike instead of one.

    In each round a runner is timed as the best of ``calls`` calls after a ``pause`` (s; a
    runtime's threads still spinning would slow the next one). Per runner: ``ratio`` (median
    over rounds of baseline time / runner time in that round), ``low`` / ``high`` (its smallest
    and largest), ``median_ms`` and ``rounds``. Call every runner once before (warm-up).
    """
    if baseline not in runs:
        raise KeyError(f'baseline {baseline!r} is not one of the runners {list(runs)}')
    if rounds < 1 or calls < 1:
        raise ValueError(f'need rounds >= 1 and calls >= 1, got {rounds} and {calls}')
    names = list(runs)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        start = round_index % len(names)
        for name in names[start:] + names[:start]:
            sleep(pause)
            best = float('inf')
            for _ in range(calls):
                began = clock()
                runs[name]()
                best = min(best, clock() - began)
            times[name].append(best)
    result = {}
    for name in names:
        ratios = [base / own for base, own in zip(times[baseline], times[name])]
        result[name] = {
            'ratio': statistics.median(ratios),
            'low': min(ratios),
            'high': max(ratios),
            'median_ms': 1000.0 * statistics.median(times[name]),
            'rounds': rounds
        }
    return result


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
