"""The SRSO loop on a noisy problem with a known optimum, and exact resume."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bowl_problem import bowl_problem, constrained_optimum

from detopt.optimize.loop import (
    LoopSettings,
    completed_iterations,
    iteration_dir,
    run_loop,
)

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


def _columns(run_dir: Path, iteration: int) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(iteration_dir(run_dir, iteration) / "events.parquet")
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _design_rows(run_dir: Path, iteration: int) -> dict[int, dict[str, float]]:
    c = _columns(run_dir, iteration)
    out = {}
    for j in np.unique(c["design_id"]):
        i = int(np.flatnonzero(c["design_id"] == j)[0])
        out[int(j)] = {"x0": c["design:x0"][i], "x1": c["design:x1"][i], "good": c["design:choice=good"][i]}
    return out


def _truth_per_design(run_dir: Path, iteration: int) -> list[np.ndarray]:
    c = _columns(run_dir, iteration)
    return [c["target_0"][c["design_id"] == j] for j in np.unique(c["design_id"])]


def test_global_phase_spreads_designs_over_the_box_and_starts_from_the_best(tmp_path: Path) -> None:
    settings = replace(SMALL, global_designs=12)
    records = run_loop(bowl_problem(), settings, tmp_path / "run", 1)
    record = records[0]
    assert record["phase"] == "global" and record["n_designs"] == 12 and record["n_events"] == 12 * 100
    rows = _design_rows(tmp_path / "run", 0)
    x0 = np.array([r["x0"] for j, r in rows.items() if j > 0])
    assert x0.min() < -6.0 and x0.max() > 6.0  # a Latin hypercube over [-10, 10], not draws around 0.5
    best = int(np.argmin(record["design_objectives"]))
    assert record["next_values"]["x0"] == pytest.approx(rows[best]["x0"])
    assert record["next_values"]["x1"] == pytest.approx(rows[best]["x1"])
    # its category becomes the more probable one: P -> (P + onehot) / 2
    assert max(record["next_probabilities"]["choice"]) == pytest.approx(0.75)


def test_final_iterations_commit_to_one_category(tmp_path: Path) -> None:
    settings = replace(SMALL, commit_iterations=1, sampling_floor=0.2)
    records = run_loop(bowl_problem(), settings, tmp_path / "run", 3)
    assert [r["phase"] for r in records] == ["local", "local", "commit"]
    last = records[-1]
    assert sorted(last["probabilities"]["choice"]) == [0.0, 1.0]
    assert last["next_probabilities"]["choice"] == last["probabilities"]["choice"]
    assert len({r["good"] for r in _design_rows(tmp_path / "run", 2).values()}) == 1  # every design built the same way


def test_common_random_numbers_give_every_design_the_same_beam(tmp_path: Path) -> None:
    run_loop(bowl_problem(), SMALL, tmp_path / "crn", 1)
    truth = _truth_per_design(tmp_path / "crn", 0)
    assert len(truth) == 4 and all(np.array_equal(truth[0], t) for t in truth[1:])
    run_loop(bowl_problem(), replace(SMALL, common_random_numbers=False), tmp_path / "plain", 1)
    truth = _truth_per_design(tmp_path / "plain", 0)
    assert not np.array_equal(truth[0], truth[1])


def test_each_step_is_judged_by_simulating_where_it_started(tmp_path: Path) -> None:
    records = run_loop(bowl_problem(), replace(SMALL, commit_iterations=0), tmp_path / "run", 4)
    for k in range(1, 4):
        rows = _design_rows(tmp_path / "run", k)
        origin = json.loads((iteration_dir(tmp_path / "run", k - 1) / "step_origin.json").read_text())
        values = {p["name"]: p["value"] for p in origin["parameters"] if p["type"] == "continuous"}
        assert rows[1]["x0"] == pytest.approx(values["x0"]) and rows[1]["x1"] == pytest.approx(values["x1"])
        record = records[k]
        assert record["improved"] == (record["design_objectives"][0] < record["design_objectives"][1])
        # the next step starts from the design with the lowest fresh objective
        assert record["origin_design"] == int(np.argmin(record["design_objectives"]))
        factor = record["next_width"] / record["width"]
        if record["improved"] is False:
            assert factor == 0.5 or record["width"] == SMALL.width.minimum
        elif records[k - 1]["status"] == "left_trust_region":
            assert factor == 2.0 or record["next_width"] == SMALL.width.maximum


def test_published_rule_keeps_sigma_and_applies_eq5_in_raw_units(tmp_path: Path) -> None:
    from detopt.optimize.trust_region import updated_covariance

    settings = replace(SMALL, covariance="aido", adam="carry", sampling_floor=0.0, max_probability_change=None,
                       commit_iterations=0)
    records = run_loop(bowl_problem(), settings, tmp_path / "run", 2)
    for k, record in enumerate(records):
        saved = json.loads((iteration_dir(tmp_path / "run", k) / "covariance_next.json").read_text())
        centre = np.array([record["values"]["x0"], record["values"]["x1"]])
        new = np.array([record["next_values"]["x0"], record["next_values"]["x1"]])
        np.testing.assert_allclose(saved["covariance"], updated_covariance(np.array([0.6, 0.6]), new, centre))
        assert record["width"] == record["next_width"] == 1.0 and record["improved"] is None


def test_carried_adam_survives_the_commit_to_one_category(tmp_path: Path) -> None:
    records = run_loop(bowl_problem(), replace(SMALL, adam="carry", commit_iterations=1), tmp_path / "run", 3)
    assert [r["phase"] for r in records] == ["local", "local", "commit"]


@pytest.mark.parametrize("damage", ["{junk", '{"names": []}', ""])
def test_a_damaged_covariance_file_is_named_and_nothing_is_written(tmp_path: Path, damage: str) -> None:
    from detopt.errors import DataError

    run_loop(bowl_problem(), SMALL, tmp_path / "run", 2)
    (iteration_dir(tmp_path / "run", 1) / "covariance_next.json").write_text(damage)
    with pytest.raises(DataError, match=r"iterations/0001/covariance_next.json: (cannot be read|changed since iteration 1) .*iterations 0-0 are intact"):
        run_loop(bowl_problem(), SMALL, tmp_path / "run", 3)
    assert not iteration_dir(tmp_path / "run", 2).exists()
