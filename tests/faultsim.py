"""Fault injection for tests and ``bench/faults.py``: a simulation that fails at random, hangs or kills its process.

Not part of the shipped package: it exists to check that detopt survives the faults a real
cluster produces (DESIGN.md section 6). Import it with ``tests/`` on ``sys.path``; Dask
worker processes started afterwards inherit that path and can unpickle it.

Each call of :class:`FaultySimulation` is one *attempt* of the simulation with a given seed.
Attempts are numbered through files in ``state_dir`` (created with ``O_EXCL``, so worker
processes and a resumed driver agree), and whether attempt ``a`` of seed ``s`` fails is the
draw ``default_rng([fault_seed, s, a]).random() < failure_rate``: the faults are random but
reproducible from ``fault_seed``, which the caller records.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Fault = Literal["raise", "hang", "kill"]


class InjectedFault(RuntimeError):
    """The failure a :class:`FaultySimulation` raises on purpose."""


def next_attempt(state_dir: str | os.PathLike[str], key: str) -> int:
    """Claim the next attempt number (1, 2, ...) of ``key``; safe across processes."""
    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        try:
            fd = os.open(folder / f"{key}.{attempt}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            attempt += 1
            continue
        os.close(fd)
        return attempt


def attempts_made(state_dir: str | os.PathLike[str]) -> int:
    """All attempts claimed so far in ``state_dir``."""
    folder = Path(state_dir)
    return len(list(folder.iterdir())) if folder.is_dir() else 0


@dataclass(frozen=True)
class FaultySimulation:
    """Wraps ``inner(design, n_events, seed)``; an attempt fails with probability ``failure_rate``.

    ``fault``: ``"raise"`` (an exception), ``"hang"`` (sleeps ``hang_s`` in short Python steps, for
    timeouts) or ``"kill"`` (SIGKILL of the current process: use only on Dask workers).
    ``faulty_attempts``: attempts beyond this number never fail (None: every attempt draws).
    """

    inner: Callable[[Mapping[str, Any], int, int], Any]
    state_dir: str
    failure_rate: float = 0.2
    fault_seed: int = 0
    fault: Fault = "raise"
    faulty_attempts: int | None = None
    hang_s: float = 600.0

    def fails(self, seed: int, attempt: int) -> bool:
        """Whether attempt ``attempt`` of the simulation with ``seed`` is a fault (a pure function of the seeds)."""
        if self.faulty_attempts is not None and attempt > self.faulty_attempts:
            return False
        return bool(np.random.default_rng([self.fault_seed, seed, attempt]).random() < self.failure_rate)

    def __call__(self, design: Mapping[str, Any], n_events: int, seed: int) -> Any:
        attempt = next_attempt(self.state_dir, str(seed))
        if self.fails(seed, attempt):
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "hang":
                end = time.monotonic() + self.hang_s
                while time.monotonic() < end:
                    time.sleep(0.01)
            raise InjectedFault(f"injected fault: seed {seed}, attempt {attempt}")
        return self.inner(design, n_events, seed)


def square(x: float) -> float:
    """A trivial task for executor tests (importable by Dask workers)."""
    return x * x


@dataclass(frozen=True)
class FaultyTask:
    """``square`` with faults: attempt ``a`` of task ``x`` misbehaves while ``a <= faulty_attempts``."""

    state_dir: str
    fault: Fault = "raise"
    faulty: tuple[float, ...] = ()
    faulty_attempts: int = 1
    hang_s: float = 600.0

    def __call__(self, x: float) -> float:
        attempt = next_attempt(self.state_dir, f"task{x:g}")
        if x in self.faulty and attempt <= self.faulty_attempts:
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "hang":
                end = time.monotonic() + self.hang_s
                while time.monotonic() < end:
                    time.sleep(0.01)
            raise InjectedFault(f"injected fault: task {x:g}, attempt {attempt}")
        return square(x)
