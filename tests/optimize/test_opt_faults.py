"""The SRSO loop under faults: failing simulations, too few designs, a full or unwritable disk, SIGKILL and resume."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/faultsim.py

from bowl_problem import bowl_problem
from faultsim import FaultySimulation
from kill_driver import SETTINGS

import detopt.atomic
from detopt.errors import ConfigError, DataError
from detopt.execution import SerialExecutor
from detopt.optimize.loop import (
    _SIMULATION,
    FAULTS_FILE,
    _int_seed,
    completed_iterations,
    iteration_dir,
    load_records,
    run_loop,
)

DRIVER = Path(__file__).with_name("kill_driver.py")


def _faults(run_dir: Path) -> list[dict]:
    path = run_dir / FAULTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _final(records: list[dict]) -> tuple[dict, dict]:
    return records[-1]["next_values"], records[-1]["next_probabilities"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """An uninterrupted two-iteration run, the result every resumed run must reproduce exactly."""
    return run_loop(bowl_problem(), SETTINGS, tmp_path_factory.mktemp("reference") / "run", 2)


def test_one_simulation_in_five_failing_is_retried_dropped_and_recorded(tmp_path: Path) -> None:
    problem = bowl_problem()
    faulty = FaultySimulation(problem.simulate, str(tmp_path / "state"), failure_rate=0.2, fault_seed=1)
    problem.simulate = faulty
    settings = replace(SETTINGS, designs_per_iteration=10, common_random_numbers=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = run_loop(problem, settings, tmp_path / "run", 2, SerialExecutor(retries=1))
    assert len(records) == 2  # the run completed
    # what the fault model predicts for the 20 simulation seeds of the run (fault_seed 1: 4 first attempts
    # fail, one of those designs fails its retry too)
    seeds = [_int_seed(settings.seed, i, _SIMULATION, j) for i in range(2) for j in range(10)]
    first = [faulty.fails(s, 1) for s in seeds]
    both = [faulty.fails(s, 1) and faulty.fails(s, 2) for s in seeds]
    assert (sum(first), sum(both)) == (4, 1)
    log = _faults(tmp_path / "run")
    retried = [e for e in log if e["action"] == "retried"]
    dropped = [e for e in log if e["action"] == "dropped"]
    assert (len(retried), len(dropped)) == (sum(first), sum(both))
    assert sum(r["n_retries"] for r in records) == sum(first)
    assert [d["design"] for r in records for d in r["dropped"]] == [e["design"] for e in dropped]
    assert sum(r["n_failed"] for r in records) == 1
    assert sum(r["n_events"] for r in records) == (20 - 1) * settings.events_per_design
    assert all(e["error"].startswith("InjectedFault: injected fault") for e in log)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "failed after 2 attempt(s) and is dropped" in messages[0]


def test_too_few_designs_stop_the_run_with_a_clear_message(tmp_path: Path) -> None:
    run_loop(bowl_problem(), SETTINGS, tmp_path / "run", 1)
    problem = bowl_problem()
    problem.simulate = FaultySimulation(problem.simulate, str(tmp_path / "state"), failure_rate=0.6, fault_seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(DataError) as info:
            run_loop(problem, replace(SETTINGS, min_designs=4), tmp_path / "run", 2, SerialExecutor(retries=0))
    message = str(info.value)
    assert "iteration 1: only" in message and "fewer than execution.min_designs = 4" in message
    assert "iterations 0-0 are complete" in message and "rerun the same command to resume" in message
    assert completed_iterations(tmp_path / "run") == 1  # iteration 0 intact, iteration 1 not marked done
    assert len(_faults(tmp_path / "run")) >= 1


def test_min_designs_must_fit_the_iteration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="execution.min_designs: must be a whole number from 2 to"):
        run_loop(bowl_problem(), replace(SETTINGS, min_designs=5), tmp_path / "run", 1)


def test_full_disk_stops_with_a_clear_error_and_keeps_the_last_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: list[dict]
) -> None:
    run_dir = tmp_path / "run"
    real_replace = os.replace

    def full_disk_in_iteration_1(src: str, dst: str) -> None:
        if f"{os.sep}0001{os.sep}" in str(dst) and str(dst).endswith("record.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(detopt.atomic.os, "replace", full_disk_in_iteration_1)
    with pytest.raises(ConfigError) as info:
        run_loop(bowl_problem(), SETTINGS, run_dir, 2)
    message = str(info.value)
    assert message.startswith("run_dir: cannot write ") and "record.json (No space left on device)" in message
    assert "during iteration 1; iterations 0-0 are complete and intact" in message
    assert completed_iterations(run_dir) == 1
    assert not list(run_dir.rglob("*.tmp"))  # the atomic writer removed its temporary file
    monkeypatch.setattr(detopt.atomic.os, "replace", real_replace)
    resumed = run_loop(bowl_problem(), SETTINGS, run_dir, 2)  # space freed: the same command resumes
    assert _final(resumed) == _final(reference)


def test_unwritable_run_directory_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions lost after iteration 0 (simulated: the tests run as root, which chmod cannot stop)."""
    run_dir = tmp_path / "run"
    run_loop(bowl_problem(), SETTINGS, run_dir, 1)
    before = {p: p.read_bytes() for p in iteration_dir(run_dir, 0).rglob("*") if p.is_file()}

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(iteration_dir(run_dir, 1)))

    monkeypatch.setattr(detopt.atomic.tempfile, "mkstemp", denied)
    with pytest.raises(ConfigError, match=r"run_dir: cannot write .*0001 \(Permission denied\) during iteration 1"):
        run_loop(bowl_problem(), SETTINGS, run_dir, 2)
    after = {p: p.read_bytes() for p in iteration_dir(run_dir, 0).rglob("*") if p.is_file()}
    assert after == before and len(load_records(run_dir)) == 1


def test_run_directory_that_cannot_exist_is_refused_before_any_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detopt.cli.main import app

    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a folder")
    config = Path(__file__).resolve().parents[2] / "examples" / "quick.yaml"
    result = CliRunner().invoke(app, ["optimize", str(config), "--run-dir", str(a_file / "run")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: run_dir: cannot write to ") and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def _kill_and_resume(tmp_path: Path, kill_at: int, when: str, reference: list[dict]) -> None:
    run_dir = tmp_path / f"run-{kill_at}-{when}"
    proc = subprocess.run(
        [sys.executable, str(DRIVER), str(run_dir), "2", str(kill_at), when],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == -9, proc.stderr  # it was killed, not finished
    done = completed_iterations(run_dir)
    resumed = run_loop(bowl_problem(), SETTINGS, run_dir, 2)
    assert len(resumed) == 2 and done <= 2
    assert _final(resumed) == _final(reference)
    assert [r["design_losses"] for r in resumed] == [r["design_losses"] for r in reference]
    assert [r["surrogate_loss_end"] for r in resumed] == [r["surrogate_loss_end"] for r in reference]


# rename points of a two-iteration run (26 in all, 13 per iteration): inside iteration 0 and inside
# iteration 1 (the slow test draws twelve more at random)
DEFAULT_POINTS = [(6, "after"), (22, "before")]


@pytest.mark.parametrize(("kill_at", "when"), DEFAULT_POINTS)
def test_sigkill_at_an_injected_point_then_resume_gives_the_same_design(
    tmp_path: Path, kill_at: int, when: str, reference: list[dict]
) -> None:
    _kill_and_resume(tmp_path, kill_at, when, reference)


@pytest.mark.slow
def test_sigkill_at_twelve_random_points(tmp_path: Path, reference: list[dict]) -> None:
    total = subprocess.run(
        [sys.executable, str(DRIVER), str(tmp_path / "count"), "2", "0"],
        capture_output=True, text=True, timeout=300, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    n_renames = int(total.stdout.split()[-1])
    rng = np.random.default_rng(2026)
    for kill_at in sorted(rng.choice(np.arange(1, n_renames + 1), size=12, replace=False)):
        _kill_and_resume(tmp_path, int(kill_at), str(rng.choice(["before", "after"])), reference)


def test_full_disk_while_preparing_the_run_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC on config.yaml (after the write check passed): exit 2, one line, no temporary file left."""
    from typer.testing import CliRunner

    from detopt.cli.main import app

    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(detopt.atomic.os, "replace", full_disk)
    config = Path(__file__).resolve().parents[2] / "examples" / "quick.yaml"
    result = CliRunner().invoke(app, ["optimize", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == f"error: run_dir: cannot write {tmp_path / 'run' / 'config.yaml'}: No space left on device"
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".detopt.lock"]  # no config.yaml, no temporary file
