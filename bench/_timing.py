"""Timing shared by the benchmarks (imported as ``_timing``: the scripts run with ``bench/`` on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Best of ``repeats`` wall times of ``fn`` after one warm-up call; ``sync`` waits for the device."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)
