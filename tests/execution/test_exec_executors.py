"""Executors: in-process and Dask LocalCluster give the same results; failures are retried and reported."""

from __future__ import annotations

import math

import pytest

from detopt.errors import ConfigError
from detopt.execution import DaskExecutor, SerialExecutor, make_executor


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x


def test_serial_results_in_order_and_failures_reported() -> None:
    with SerialExecutor(retries=2) as ex:
        out = ex.map(_fail_on_three, [1, 2, 3, 4])
    assert [o.value for o in out] == [1, 2, None, 4]
    assert out[2].error == "ValueError: three is bad" and out[2].attempts == 3


def test_dask_local_cluster_matches_serial() -> None:
    # worker processes import the task function by name: use an importable one (not this test module)
    seen: list[tuple[int, int]] = []
    tasks = [0.0, 1.0, 4.0, 9.0, -1.0]
    with SerialExecutor(retries=0) as ex:
        serial = ex.map(math.sqrt, tasks)
    with DaskExecutor(n_workers=2, retries=0) as ex:
        out = ex.map(math.sqrt, tasks, progress=lambda d, t: seen.append((d, t)))
    assert [o.value for o in out] == [o.value for o in serial] == [0.0, 1.0, 2.0, 3.0, None]
    assert seen[-1] == (5, 5)
    assert not out[4].ok and "math domain error" in (out[4].error or "")


def test_make_executor_rejects_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="execution.backend"):
        make_executor("kubernetes")
    with pytest.raises(ConfigError, match="execution.n_workers"):
        DaskExecutor(n_workers=0)


def test_local_cluster_listens_on_loopback_only() -> None:
    # a Dask scheduler executes what it is sent: no other host may reach the default local cluster
    import os

    import psutil

    with DaskExecutor(n_workers=1) as executor:
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        pids = {p.pid for p in processes}
        addresses = {c.laddr.ip for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.pid in pids}
        assert addresses == {"127.0.0.1"}, addresses
        assert executor.map(math.sqrt, [9.0])[0].value == 3.0  # and it works
    assert os.getpid() in pids
