"""The SRSO loop on a noisy problem with a known optimum, and exact resume."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bowl_problem import bowl_problem, constrained_optimum
from detopt.optimize.loop import LoopSettings, completed_iterations, iteration_dir, run_loop

BOWL = LoopSettings(
    designs_per_iteration=8, events_per_design=200, seed=3, lr=0.05, max_steps=100, optimizer_events=500,
    surrogate_epochs=20, surrogate_hidden=(64, 64), surrogate_train_steps=50,
)


def test_bowl_converges_to_constrained_optimum_and_right_choice(tmp_path: Path) -> None:
    records = run_loop(bowl_problem(), BOWL, tmp_path / "run", 12)
    final = np.array([records[-1]["next_values"]["x0"], records[-1]["next_values"]["x1"]])
    optimum = constrained_optimum()  # (2.524, 1.524): the length limit x0 + x1 <= 4 is active
    assert np.linalg.norm(final - optimum) / np.linalg.norm(optimum) < 0.05
    assert np.all(np.abs(final - optimum) / optimum < 0.05)
    assert records[-1]["next_probabilities"]["choice"][0] > 0.9  # "good" is the right answer
    assert records[-1]["reconstruction_loss"] < 0.2 * records[0]["reconstruction_loss"]


SMALL = LoopSettings(
    designs_per_iteration=4, events_per_design=100, seed=11, lr=0.05, max_steps=20, optimizer_events=200,
    surrogate_epochs=5, surrogate_hidden=(32, 32), surrogate_train_steps=20,
)


def test_resume_gives_the_same_design_as_an_uninterrupted_run(tmp_path: Path) -> None:
    full = run_loop(bowl_problem(), SMALL, tmp_path / "full", 4)
    # a crash in the middle of iteration 2: iterations 0-1 complete, a folder without done.json
    shutil.copytree(tmp_path / "full", tmp_path / "part")
    for k in (2, 3):
        shutil.rmtree(iteration_dir(tmp_path / "part", k))
    broken = iteration_dir(tmp_path / "part", 2)
    broken.mkdir(parents=True)
    (broken / "record.json").write_text("{garbage")
    assert completed_iterations(tmp_path / "part") == 2
    resumed = run_loop(bowl_problem(), SMALL, tmp_path / "part", 4)
    assert len(resumed) == 4
    assert resumed[-1]["next_values"] == full[-1]["next_values"]
    assert resumed[-1]["next_probabilities"] == full[-1]["next_probabilities"]
    a = json.loads((iteration_dir(tmp_path / "full", 3) / "covariance_next.json").read_text())
    b = json.loads((iteration_dir(tmp_path / "part", 3) / "covariance_next.json").read_text())
    assert a == b


def test_iteration_folder_contents(tmp_path: Path) -> None:
    run_loop(bowl_problem(), SMALL, tmp_path / "run", 1)
    folder = iteration_dir(tmp_path / "run", 0)
    for name in ("design.json", "design_next.json", "covariance.json", "covariance_next.json", "events.parquet",
                 "record.json", "validation.json", "done.json", "surrogate", "optimizer"):
        assert (folder / name).exists(), name
    record = json.loads((folder / "record.json").read_text())
    assert record["n_events"] == 4 * 100 and record["n_failed"] == 0
    assert set(record["timings"]) >= {"simulation_s", "reconstruction_train_s", "surrogate_train_s", "optimize_s", "iteration_s"}


@pytest.mark.parametrize("flaky_index", [2])
def test_failed_design_is_dropped_with_a_warning(tmp_path: Path, flaky_index: int) -> None:
    problem = bowl_problem()
    inner = problem.simulate

    def flaky(design, n_events, seed):  # type: ignore[no-untyped-def]
        if design["x0"] != 0.5 and seed % 2 == 0:
            raise RuntimeError("simulation crashed")
        return inner(design, n_events, seed)

    problem.simulate = flaky
    with pytest.warns(RuntimeWarning, match="dropped"):
        records = run_loop(problem, replace(SMALL, common_random_numbers=False), tmp_path / "run", 1)
    assert records[0]["n_failed"] >= 1
    assert records[0]["n_events"] == (4 - records[0]["n_failed"]) * 100


def test_reuse_of_earlier_events_inside_the_trust_region(tmp_path: Path) -> None:
    from dataclasses import replace

    records = run_loop(bowl_problem(), replace(SMALL, reuse_iterations=1), tmp_path / "run", 2)
    assert records[0]["n_reused_events"] == 0
    # iteration 1 is centred near iteration 0's centre: some of its designs lie inside the new region
    assert 0 < records[1]["n_reused_events"] <= 4 * 100
