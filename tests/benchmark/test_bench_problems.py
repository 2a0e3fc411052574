"""Benchmark problems: the closed-form objective, its optimum, the noisy observation and the penalties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from detopt.benchmark.problems import ANALYTIC_PROBLEMS, LENGTH_WEIGHT, analytic_problem
from detopt.errors import ConfigError


def test_suite_has_2_6_12_parameter_problems_continuous_and_mixed() -> None:
    sizes = {name: c + d for name, (c, d) in ANALYTIC_PROBLEMS.items()}
    assert sorted(set(sizes.values())) == [2, 6, 12]
    assert {d > 0 for c, d in ANALYTIC_PROBLEMS.values()} == {True, False}


def test_noisy_observation_averages_to_the_closed_form() -> None:
    """The mean per-event loss of 40k events of a design is its expected loss within 1% (plus the same penalty)."""
    problem = analytic_problem("mixed6")
    design = {**{n: 2.0 + 0.3 * i for i, n in enumerate(problem.names)}, "c0": "b", "c1": "c"}
    observed = problem.observe(design, 40_000, seed=5)
    assert observed == pytest.approx(problem.true_objective(design), rel=0.01)
    # a few hundred events (one black-box evaluation) are noisy: two seeds differ
    assert problem.observe(design, 200, seed=1) != problem.observe(design, 200, seed=2)


def test_length_constraint_is_active_and_penalized_as_aido_eq7() -> None:
    problem = analytic_problem("bowl6")
    best, value = problem.optimum
    x = np.array([best[n] for n in problem.names])
    assert x.sum() > problem.limit  # the constrained optimum sits just past the limit (quadratic penalty)
    excess = x.sum() - problem.limit
    assert problem.penalty(best) == pytest.approx(LENGTH_WEIGHT * excess**2, rel=1e-9)
    unconstrained = problem.expected_loss(problem.simulation.optimum, {})
    assert unconstrained < value  # the constraint costs something


def test_optimum_beats_every_category_choice_and_nearby_point() -> None:
    problem = analytic_problem("mixed2")
    best, value = problem.optimum
    for category in "abc":
        for x in np.linspace(0.0, 10.0, 201):
            assert problem.true_objective({"x0": float(x), "c0": category}) >= value - 1e-9
    rng = np.random.default_rng(0)
    twelve = analytic_problem("mixed12")
    best12, value12 = twelve.optimum
    for _ in range(50):
        moved = {k: (v + rng.normal(0, 0.05) if isinstance(v, float) else v) for k, v in best12.items()}
        assert twelve.true_objective(moved) >= value12 - 1e-9
    for combo in itertools.islice(itertools.product("abc", repeat=4), 10):
        other = {**best12, **dict(zip(twelve.discrete_names, combo, strict=True))}
        assert twelve.true_objective(other) >= value12 - 1e-9


def test_start_design_is_far_from_the_optimum() -> None:
    """The start is at least 5x worse than the optimum on every problem, so progress is measurable."""
    for name in ANALYTIC_PROBLEMS:
        problem = analytic_problem(name)
        assert problem.true_objective(problem.space.current_design()) > 5 * problem.best_known


def test_unknown_problem_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="bowl2"):
        analytic_problem("nope")
