"""Optimizer adapters: the budget is spent exactly, the start design comes first, the incumbent only improves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detopt.benchmark.optimizers import (
    CMAES,
    BoxEncoding,
    Budget,
    BudgetExhausted,
    OptunaSampler,
    RandomSearch,
    RunTrace,
    evaluation_seed,
    make_optimizers,
)
from detopt.benchmark.problems import analytic_problem
from detopt.errors import ConfigError


@pytest.mark.parametrize(
    "optimizer",
    [RandomSearch(100), CMAES(100), OptunaSampler(100, "tpe", "tpe"), OptunaSampler(100, "gp", "gp")],
    ids=["random", "cma-es", "tpe", "gp"],
)
def test_black_box_spends_the_budget_exactly_and_starts_at_the_start_design(optimizer, tmp_path: Path) -> None:
    problem = analytic_problem("mixed2")
    trace = optimizer.run(problem, 1_300, seed=3, workdir=tmp_path)  # 13 evaluations of 100 events
    assert trace.events_spent == 1_300 and trace.evaluations == 13
    assert [p.events for p in trace.points] == list(range(100, 1_301, 100))
    assert trace.first_design == problem.space.current_design()
    observed = [p.observed for p in trace.points]
    assert all(b <= a for a, b in zip(observed, observed[1:], strict=False))  # the incumbent's observed value never rises
    final = problem.true_objective(trace.points[-1].design)
    assert final < problem.true_objective(trace.first_design)  # 13 evaluations already beat the start (17.0)


def test_budget_refuses_the_evaluation_that_would_overspend() -> None:
    problem = analytic_problem("bowl2")
    trace = RunTrace("x", "bowl2", 0, 250)
    budget = Budget(problem, 250, 100, 0, trace)
    budget.evaluate(problem.space.current_design())
    budget.evaluate(problem.space.current_design())
    assert not budget.can_evaluate and budget.remaining == 50
    with pytest.raises(BudgetExhausted):
        budget.evaluate(problem.space.current_design())
    assert trace.events_spent == 200
    with pytest.raises(ConfigError, match="budget"):
        Budget(problem, 50, 100, 0, trace)


def test_same_seed_same_simulations_for_every_method() -> None:
    """Common random numbers: evaluation i of seed s uses the same simulation seed whatever the method."""
    assert evaluation_seed(4, 7) == evaluation_seed(4, 7)
    assert len({evaluation_seed(4, i) for i in range(100)} | {evaluation_seed(5, 0)}) == 101


def test_box_encoding_round_trip_and_argmax_categories() -> None:
    problem = analytic_problem("mixed6")
    encoding = BoxEncoding(problem.space)
    assert encoding.size == 4 + 2 * 3
    assert encoding.decode(encoding.start()) == problem.space.current_design()
    v = np.array([0.0, 0.5, 1.0, 0.25, 0.1, 0.7, 0.2, 0.3, 0.3, 0.9])
    design = encoding.decode(v)
    assert [design[f"x{i}"] for i in range(4)] == [0.0, 5.0, 10.0, 2.5]
    assert (design["c0"], design["c1"]) == ("b", "c")


def test_srso_counts_every_simulated_event(tmp_path: Path) -> None:
    from detopt.optimize.loop import LoopSettings

    settings = LoopSettings(designs_per_iteration=4, events_per_design=50, max_steps=5, optimizer_events=100,
                            surrogate_epochs=2, surrogate_hidden=(16, 16), surrogate_train_steps=10, validation_events=50)
    (srso,) = make_optimizers(["detopt"], settings, 100)
    trace = srso.run(analytic_problem("bowl2"), 450, seed=0, workdir=tmp_path)  # 2 iterations of 200; 50 left over
    assert trace.events_spent == 400 and trace.evaluations == 8
    assert [p.events for p in trace.points] == [200, 400]
    with pytest.raises(ConfigError, match="methods"):
        make_optimizers(["nope"], settings, 100)
