"""Where simulations run: in-process (``SerialExecutor``) or on Dask (``DaskExecutor``, a ``LocalCluster`` by default).

An executor maps one picklable function over independent tasks and returns, for each
task, either its result or the exception of its last attempt. A task that fails is
retried ``retries`` times; the caller decides what to do with the failures (the SRSO
loop drops those designs with a warning, never silently; DESIGN.md section 6).

Executors are context managers: a ``DaskExecutor`` starts its cluster on ``__enter__``
(not on construction or import) and closes it on ``__exit__``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from detopt.errors import ConfigError

__all__ = ["DaskExecutor", "Executor", "Outcome", "SerialExecutor", "make_executor"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """Result of one task: ``value`` when it succeeded, else ``error`` (the last attempt's, as text)."""

    index: int
    value: R | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs ``fn`` on every task; one :class:`Outcome` per task, in task order."""

    def map(
        self, fn: Callable[[T], R], tasks: Sequence[T], progress: Callable[[int, int], None] | None = None
    ) -> list[Outcome[R]]: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc: object) -> None: ...


def _check_retries(retries: int) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError("execution.retries", f"must be an integer >= 0, got {retries!r}")
    return retries


class SerialExecutor:
    """Runs the tasks one after the other in this process (tests, debugging, tiny problems)."""

    def __init__(self, retries: int = 1) -> None:
        self.retries = _check_retries(retries)

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(
        self, fn: Callable[[T], R], tasks: Sequence[T], progress: Callable[[int, int], None] | None = None
    ) -> list[Outcome[R]]:
        outcomes: list[Outcome[R]] = []
        for index, task in enumerate(tasks):
            error = None
            for attempt in range(1, self.retries + 2):
                try:
                    outcomes.append(Outcome(index, fn(task), None, attempt))
                    break
                except Exception as exc:  # a failed simulation must not stop the run; reported to the caller
                    error = f"{type(exc).__name__}: {exc}"
            else:
                outcomes.append(Outcome(index, None, error, self.retries + 1))
            if progress is not None:
                progress(index + 1, len(tasks))
        return outcomes


class DaskExecutor:
    """Runs the tasks on Dask: a ``LocalCluster`` of ``n_workers`` single-threaded processes by default,
    or an existing scheduler at ``address`` (e.g. one started by dask-jobqueue on Slurm/HTCondor).

    Dask retries a task whose worker died (``retries``); an exception raised by the task is
    retried the same number of times.
    """

    def __init__(
        self,
        n_workers: int = 2,
        address: str | None = None,
        retries: int = 1,
        threads_per_worker: int = 1,
        memory_limit: str | None = "auto",
    ) -> None:
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ConfigError("execution.n_workers", f"must be an integer >= 1, got {n_workers!r}")
        self.n_workers = n_workers
        self.address = address
        self.retries = _check_retries(retries)
        self.threads_per_worker = threads_per_worker
        self.memory_limit = memory_limit
        self._cluster: Any = None
        self._client: Any = None

    def __enter__(self) -> "DaskExecutor":
        from distributed import Client, LocalCluster

        if self.address is None:
            self._cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                dashboard_address=":0",
                memory_limit=self.memory_limit,
            )
            self._client = Client(self._cluster)
        else:
            self._client = Client(self.address)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def map(
        self, fn: Callable[[T], R], tasks: Sequence[T], progress: Callable[[int, int], None] | None = None
    ) -> list[Outcome[R]]:
        from distributed import as_completed

        if self._client is None:
            raise RuntimeError("DaskExecutor.map called outside 'with DaskExecutor(...) as executor:'")
        futures = self._client.map(fn, list(tasks), retries=self.retries, pure=False)
        index_of = {f.key: i for i, f in enumerate(futures)}
        outcomes: list[Outcome[R] | None] = [None] * len(futures)
        done = 0
        for future in as_completed(futures):
            i = index_of[future.key]
            if future.status == "finished":
                outcomes[i] = Outcome(i, future.result(), None, 1)
            else:
                exc = future.exception()
                outcomes[i] = Outcome(i, None, f"{type(exc).__name__}: {exc}", self.retries + 1)
            done += 1
            if progress is not None:
                progress(done, len(futures))
        return [o for o in outcomes if o is not None]


def make_executor(backend: str, n_workers: int = 2, address: str | None = None, retries: int = 1) -> SerialExecutor | DaskExecutor:
    """``"serial"`` -> :class:`SerialExecutor`; ``"local"`` -> :class:`DaskExecutor` (LocalCluster);
    ``"dask"`` -> :class:`DaskExecutor` connected to ``address``."""
    if backend == "serial":
        return SerialExecutor(retries=retries)
    if backend == "local":
        return DaskExecutor(n_workers=n_workers, retries=retries)
    if backend == "dask":
        if not address:
            raise ConfigError("execution.address", "backend 'dask' needs the scheduler address (tcp://host:8786)")
        return DaskExecutor(n_workers=n_workers, address=address, retries=retries)
    raise ConfigError("execution.backend", f"must be 'local', 'serial' or 'dask', got {backend!r}")
