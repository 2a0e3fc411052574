"""Where simulations run: in-process (``SerialExecutor``) or on Dask (``DaskExecutor``, a ``LocalCluster`` by default).

An executor maps one picklable function over independent tasks and returns, for each
task, either its result or the exception of its last attempt. A task that fails is
retried ``retries`` times; the caller decides what to do with the failures (the SRSO
loop drops those designs with a warning, never silently; DESIGN.md section 6).

Faults an attempt can end in, each counted as one failed attempt and retried:

- the task raises (a crashed simulation);
- the task runs longer than ``timeout_s``: a watchdog thread raises :class:`TaskTimeout`
  inside it (delivered at the next Python bytecode, so a call blocked inside native code is
  interrupted when it returns to Python);
- the Dask worker process dies mid-task (killed, out of memory): Dask itself first
  reschedules the task on another worker (``distributed.scheduler.allowed-failures`` times),
  then reports ``KilledWorker``, which counts as one failed attempt here.

``Outcome.errors`` keeps the error of every failed attempt, so the caller can record each
retry, not only the last failure.

Executors are context managers: a ``DaskExecutor`` starts its cluster on ``__enter__``
(not on construction or import) and closes it on ``__exit__``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from detopt.errors import ConfigError

if TYPE_CHECKING:
    from detopt.execution.clusters import ClusterSettings

__all__ = ["DaskExecutor", "Executor", "Outcome", "SerialExecutor", "TaskTimeout", "make_executor"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """Result of one task: ``value`` when it succeeded, else ``error`` (the last attempt's, as text)."""

    index: int
    value: R | None
    error: str | None
    attempts: int
    errors: tuple[str, ...] = ()  # the error of every failed attempt, in order (retries included)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retries(self) -> int:
        """Attempts after the first (each follows a failed one)."""
        return self.attempts - 1


class TaskTimeout(Exception):
    """A task ran past the executor's ``timeout_s`` and was interrupted."""


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Schedule ``exc_type`` to be raised in thread ``thread_id`` at its next bytecode (None clears it)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None)


def call_with_timeout(fn: Callable[[T], R], task: T, timeout_s: float | None) -> R:
    """``fn(task)``, interrupted with :class:`TaskTimeout` if it runs longer than ``timeout_s`` seconds.

    A watchdog thread raises the exception asynchronously in the calling thread, so this works
    in any thread (Dask worker threads included), not only the main one.
    """
    if timeout_s is None:
        return fn(task)
    target = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                _raise_in_thread(target, TaskTimeout)

    timer = threading.Timer(timeout_s, fire)
    timer.daemon = True
    timer.start()
    try:
        return fn(task)
    except TaskTimeout:
        raise TaskTimeout(f"task ran longer than the timeout of {timeout_s:g} s (execution.timeout_s)") from None
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["fired"]:
                _raise_in_thread(target, None)  # clear an exception not yet delivered


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


def _check_timeout(timeout_s: float | None) -> float | None:
    if timeout_s is None:
        return None
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < float("inf"):
        raise ConfigError("execution.timeout_s", f"must be a number of seconds > 0 (or null for none), got {timeout_s!r}")
    return float(timeout_s)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class SerialExecutor:
    """Runs the tasks one after the other in this process (tests, debugging, tiny problems)."""

    def __init__(self, retries: int = 1, timeout_s: float | None = None) -> None:
        self.retries = _check_retries(retries)
        self.timeout_s = _check_timeout(timeout_s)

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(
        self, fn: Callable[[T], R], tasks: Sequence[T], progress: Callable[[int, int], None] | None = None
    ) -> list[Outcome[R]]:
        outcomes: list[Outcome[R]] = []
        for index, task in enumerate(tasks):
            errors: list[str] = []
            for attempt in range(1, self.retries + 2):
                try:
                    value = call_with_timeout(fn, task, self.timeout_s)
                    outcomes.append(Outcome(index, value, None, attempt, tuple(errors)))
                    break
                except Exception as exc:  # a failed simulation must not stop the run; reported to the caller
                    errors.append(_error_text(exc))
            else:
                outcomes.append(Outcome(index, None, errors[-1], self.retries + 1, tuple(errors)))
            if progress is not None:
                progress(index + 1, len(tasks))
        return outcomes


def _die_with_driver_plugin() -> Any:
    """A worker plugin for the local cluster (built on use: distributed is imported lazily)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class DieWithDriver(_DieWithDriver, WorkerPlugin):
        pass

    return DieWithDriver()


class _DieWithDriver:
    """A Dask worker plugin for the local cluster: the worker process is killed when the driver process dies,
    even by SIGKILL (Linux parent-death signal), so no worker is left running after a killed run."""

    def setup(self, worker: Any) -> None:
        import signal
        import sys

        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
            except (OSError, AttributeError):
                pass

    def teardown(self, worker: Any) -> None:
        return None


class DaskExecutor:
    """Runs the tasks on Dask: a ``LocalCluster`` of ``n_workers`` single-threaded processes by default,
    the cluster that ``cluster_factory`` starts (dask-jobqueue on Slurm, HTCondor, PBS, LSF:
    :mod:`detopt.execution.clusters`), or an existing scheduler at ``address``.

    A task whose worker died is rescheduled by Dask; an exception raised by the task, a
    ``KilledWorker`` and a timeout (``timeout_s``) each count as one failed attempt, and the task
    is resubmitted until ``retries`` retries are spent.
    """

    def __init__(
        self,
        n_workers: int = 2,
        address: str | None = None,
        retries: int = 1,
        threads_per_worker: int = 1,
        memory_limit: str | None = "auto",
        timeout_s: float | None = None,
        cluster_factory: Callable[[], Any] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ConfigError("execution.n_workers", f"must be an integer >= 1, got {n_workers!r}")
        self.n_workers = n_workers
        self.address = address
        self.retries = _check_retries(retries)
        self.timeout_s = _check_timeout(timeout_s)
        self.threads_per_worker = threads_per_worker
        self.memory_limit = memory_limit
        self.host = host
        #: Starts a cluster (e.g. dask-jobqueue's, :func:`detopt.execution.clusters.cluster_factory`) on ``__enter__``.
        self.cluster_factory = cluster_factory
        self._cluster: Any = None
        self._client: Any = None

    def __enter__(self) -> "DaskExecutor":
        from distributed import Client, LocalCluster

        if self.cluster_factory is not None:
            self._cluster = self.cluster_factory()
            try:
                self._client = Client(self._cluster)
            except BaseException:
                self._cluster.close()
                self._cluster = None
                raise
        elif self.address is None:
            # loopback only: a scheduler executes what it is sent, so no other host may reach it
            self._cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                host=self.host,
                dashboard_address=f"{self.host}:0",
                memory_limit=self.memory_limit,
            )
            self._client = Client(self._cluster)
            self._client.register_plugin(_die_with_driver_plugin(), name="detopt-die-with-driver")
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
        tasks = list(tasks)
        client = self._client

        def submit(i: int) -> Any:
            return client.submit(call_with_timeout, fn, tasks[i], self.timeout_s, pure=False, retries=0)

        index_of: dict[str, int] = {}
        futures = []
        for i in range(len(tasks)):
            future = submit(i)
            index_of[future.key] = i
            futures.append(future)
        errors: list[list[str]] = [[] for _ in tasks]
        outcomes: list[Outcome[R] | None] = [None] * len(tasks)
        done = 0
        pending = as_completed(futures)
        for future in pending:
            i = index_of.pop(future.key)
            if future.status == "finished":
                outcomes[i] = Outcome(i, future.result(), None, len(errors[i]) + 1, tuple(errors[i]))
            else:
                errors[i].append(_error_text(future.exception()))
                if len(errors[i]) <= self.retries:  # resubmit: a new key, so a new attempt
                    again = submit(i)
                    index_of[again.key] = i
                    pending.add(again)
                    future.release()
                    continue
                outcomes[i] = Outcome(i, None, errors[i][-1], len(errors[i]), tuple(errors[i]))
            future.release()
            done += 1
            if progress is not None:
                progress(done, len(tasks))
        return [o for o in outcomes if o is not None]


def make_executor(
    backend: str,
    n_workers: int = 2,
    address: str | None = None,
    retries: int = 1,
    timeout_s: float | None = None,
    cluster: ClusterSettings | None = None,
    host: str = "127.0.0.1",
) -> SerialExecutor | DaskExecutor:
    """``"serial"`` -> :class:`SerialExecutor`; ``"local"`` -> :class:`DaskExecutor` (LocalCluster);
    ``"slurm"``, ``"htcondor"``, ``"pbs"``, ``"lsf"`` -> :class:`DaskExecutor` on a dask-jobqueue cluster
    described by ``cluster`` (:mod:`detopt.execution.clusters`; ``n_workers`` jobs unless it says otherwise);
    ``"address"`` (alias ``"dask"``) -> :class:`DaskExecutor` connected to the scheduler at ``address``."""
    from detopt.execution.clusters import BATCH_SYSTEMS, check_execution, cluster_factory

    check_execution(backend, cluster, address)
    if backend in BATCH_SYSTEMS:
        factory = cluster_factory(backend, cluster, default_jobs=n_workers)
        return DaskExecutor(n_workers=n_workers, retries=retries, timeout_s=timeout_s, cluster_factory=factory)
    if backend == "serial":
        return SerialExecutor(retries=retries, timeout_s=timeout_s)
    if backend == "local":
        return DaskExecutor(n_workers=n_workers, retries=retries, timeout_s=timeout_s, host=host)
    if backend in ("address", "dask"):
        return DaskExecutor(n_workers=n_workers, address=address, retries=retries, timeout_s=timeout_s)
    raise ConfigError(
        "execution.backend", f"must be one of local, serial, slurm, htcondor, pbs, lsf, address, got {backend!r}"
    )
