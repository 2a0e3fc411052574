"""Executors under faults: a raising task, a task past its timeout and a killed Dask worker are retried and counted."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/faultsim.py (also seen by Dask workers)

from faultsim import FaultyTask, attempts_made, square  # noqa: E402

from detopt.errors import ConfigError  # noqa: E402
from detopt.execution import DaskExecutor, SerialExecutor, TaskTimeout, make_executor  # noqa: E402
from detopt.execution.executors import call_with_timeout  # noqa: E402


def test_serial_timeout_interrupts_a_hanging_task_and_retries(tmp_path: Path) -> None:
    task = FaultyTask(str(tmp_path / "state"), fault="hang", faulty=(3.0,), faulty_attempts=1)
    t0 = time.monotonic()
    with SerialExecutor(retries=1, timeout_s=0.3) as ex:
        out = ex.map(task, [1.0, 3.0, 4.0])
    elapsed = time.monotonic() - t0
    assert [o.value for o in out] == [1.0, 9.0, 16.0]  # the second attempt of task 3 succeeds
    assert out[1].attempts == 2 and out[1].retries == 1
    assert len(out[1].errors) == 1 and out[1].errors[0].startswith("TaskTimeout: task ran longer than the timeout of 0.3 s")
    assert out[0].errors == () and out[0].attempts == 1
    assert elapsed < 5.0  # the hang (600 s) was cut at 0.3 s


def test_serial_every_failed_attempt_is_kept_and_the_last_reported(tmp_path: Path) -> None:
    task = FaultyTask(str(tmp_path / "state"), fault="raise", faulty=(2.0,), faulty_attempts=10)
    with SerialExecutor(retries=2) as ex:
        out = ex.map(task, [2.0, 5.0])
    assert not out[0].ok and out[0].attempts == 3
    assert out[0].errors == tuple(f"InjectedFault: injected fault: task 2, attempt {a}" for a in (1, 2, 3))
    assert out[0].error == out[0].errors[-1]
    assert out[1].value == 25.0
    assert attempts_made(tmp_path / "state") == 4


def test_timeout_is_not_raised_after_the_task_finished() -> None:
    # a task that ends at its deadline may time out inside the call, but no late TaskTimeout may reach
    # the caller's code after the call returned
    finished = 0
    for _ in range(50):
        try:
            assert call_with_timeout(square, 3.0, 0.001) == 9.0
            finished += 1
        except TaskTimeout:
            pass  # the call itself ran past 1 ms (a loaded machine): allowed
        total = 0
        for k in range(2000):  # bytecodes at which a stray asynchronous exception would be raised
            total += k
        assert total == 1999000
    time.sleep(0.05)
    assert finished >= 1


def test_timeout_and_retries_are_checked() -> None:
    for bad in (0, -1.0, float("inf"), "10", True):
        with pytest.raises(ConfigError, match="execution.timeout_s"):
            SerialExecutor(timeout_s=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="execution.retries"):
        make_executor("serial", retries=-1)
    assert make_executor("serial", timeout_s=2.5).timeout_s == 2.5


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[DaskExecutor]:
    with DaskExecutor(n_workers=2, retries=1, timeout_s=1.0) as ex:
        yield ex


def test_dask_worker_killed_mid_task_is_retried(dask_executor: DaskExecutor, tmp_path: Path) -> None:
    state = tmp_path / "state"
    task = FaultyTask(str(state), fault="kill", faulty=(3.0,), faulty_attempts=1)
    out = dask_executor.map(task, [1.0, 2.0, 3.0, 4.0])
    assert [o.value for o in out] == [1.0, 4.0, 9.0, 16.0]
    assert (state / "task3.1").exists() and (state / "task3.2").exists()  # it died once and ran again
    assert all(o.ok for o in out)


def test_dask_timeout_and_exception_count_as_failed_attempts(dask_executor: DaskExecutor, tmp_path: Path) -> None:
    hang = FaultyTask(str(tmp_path / "hang"), fault="hang", faulty=(2.0,), faulty_attempts=5)
    t0 = time.monotonic()
    out = dask_executor.map(hang, [1.0, 2.0])
    assert out[0].value == 1.0
    assert not out[1].ok and out[1].attempts == 2  # retries=1: two attempts, both cut at 1 s
    assert all(e.startswith("TaskTimeout: task ran longer than the timeout of 1 s") for e in out[1].errors)
    assert time.monotonic() - t0 < 30.0
    # the worker threads were freed: a normal map still runs
    flaky = FaultyTask(str(tmp_path / "raise"), fault="raise", faulty=(5.0,), faulty_attempts=1)
    out = dask_executor.map(flaky, [5.0, 6.0])
    assert [o.value for o in out] == [25.0, 36.0]
    assert out[0].attempts == 2 and out[0].errors == ("InjectedFault: injected fault: task 5, attempt 1",)
    assert isinstance(TaskTimeout("x"), Exception)
