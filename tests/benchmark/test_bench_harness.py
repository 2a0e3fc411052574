"""The CI-sized harness: every optimizer on a tiny analytic problem and a tiny calorimeter problem.

This is the reduced form of issue 7's benchmark that runs in CI so that the harness cannot rot.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from detopt.benchmark.harness import (
    SuiteSpec,
    events_to_target,
    recommendation_at,
    run_suite,
    suite_spec,
)
from detopt.benchmark.optimizers import METHODS, RunTrace, TracePoint
from detopt.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_every_optimizer_on_the_noisy_2d_bowl(tmp_path: Path) -> None:
    """Budget spent exactly, monotone best-so-far, and every method beats its own first design."""
    spec = suite_spec("ci", seeds=1)
    assert spec.methods == list(METHODS) and spec.budget_events == 1_600
    document = run_suite(spec, workdir=tmp_path)
    runs = document["runs"]
    assert sorted(r["method"] for r in runs) == sorted(METHODS)
    start = document["problems"]["bowl2"]["start_true"]
    assert start == pytest.approx(22.0, abs=0.01)  # |A (x_start - x*)|^2 + 2 * 0.3^2 + no penalty
    for run in runs:
        assert run["events_spent"] == 1_600, run["method"]
        assert run["events"] == [0, 400, 800, 1_200, 1_600]
        best = run["best_so_far"]
        assert all(b <= a for a, b in zip(best, best[1:], strict=False)), run["method"]
        assert run["recommended"][0] == pytest.approx(run["first_design_true"])
        assert run["recommended"][-1] < run["first_design_true"], run["method"]
    summary = document["summary"]["bowl2"]
    assert summary["detopt"]["beats_start"] == 1
    # the SRSO loop gets at least halfway from the start (22.0) to the optimum (1.08) in 4 iterations
    assert summary["detopt"]["final"]["median"] < (22.0 + 1.08) / 2


def test_tiny_calorimeter_every_method_spends_the_budget(tmp_path: Path) -> None:
    from detopt.benchmark.problems import CalorimeterBenchmark

    bench = CalorimeterBenchmark(REPO / "examples" / "quick.yaml", true_events=400, reconstruction_epochs=3)
    settings = suite_spec("analytic").srso_settings
    settings = replace(settings, designs_per_iteration=3, events_per_design=100, global_designs=0, max_steps=3, optimizer_events=150,
                       surrogate_epochs=2, surrogate_hidden=(16, 16), surrogate_train_steps=10, validation_events=50)
    spec = SuiteSpec("calorimeter-ci", [bench], ["detopt", "cma-es", "tpe", "gp", "random"], [0], settings,
                     events_per_evaluation=300, budget_events=600, checkpoints=1)
    document = run_suite(spec, workdir=tmp_path)
    assert len(document["runs"]) == 5
    start = document["problems"]["calorimeter"]["start_true"]
    for run in document["runs"]:
        assert run["events_spent"] == 600 and run["events"] == [0, 600]
        assert run["recommended"][0] == start  # one judgement of the shared start design (cached)
        assert all(math.isfinite(v) and v > 0 for v in run["recommended"])
    assert document["problems"]["calorimeter"]["best_known_source"].startswith("best true objective measured")


def test_recommendation_and_events_to_target() -> None:
    trace = RunTrace("m", "p", 0, 300, first_design={"x": 0.0},
                     points=[TracePoint(100, {"x": 1.0}), TracePoint(200, {"x": 2.0}), TracePoint(300, {"x": 2.0})])
    assert recommendation_at(trace, 0) == {"x": 0.0}
    assert recommendation_at(trace, 150) == {"x": 1.0}
    assert recommendation_at(trace, 300) == {"x": 2.0}
    assert events_to_target([0, 100, 200], [3.0, 1.06, 1.04], best_known=1.0) == 200  # 1.05 is the 5% line
    assert events_to_target([0, 100], [3.0, 2.0], best_known=1.0) == np.inf


def test_budget_must_fit_whole_iterations_and_evaluations() -> None:
    with pytest.raises(ConfigError, match="global phase .800 events. plus a whole number"):
        suite_spec("ci", budget_events=1_000)
    with pytest.raises(ConfigError, match="budget"):
        suite_spec("ci", budget_events=800)  # the global phase alone
    with pytest.raises(ConfigError, match="unknown suite"):
        suite_spec("nope")
    with pytest.raises(ConfigError, match="methods"):
        suite_spec("ci", methods=["bfgs"])
