"""Discrete choices: sampling floor, final commit, moving towards an observed design, probability trust region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.errors import ConfigError
from detopt.optimize.discrete import committed, floored_probabilities, moved_towards
from detopt.optimize.optimizer import DesignOptimizer


def _space(p: tuple[float, ...] = (0.9, 0.05, 0.05)) -> DesignSpace:
    return DesignSpace(parameters=[
        ContinuousParameter(name="t", value=2.0, bounds=(0.0, 10.0), sigma=1.0, unit="cm"),
        DiscreteParameter(name="m", categories=["Pb", "Fe", "W"], probabilities=list(p)),
    ])


def test_floor_keeps_every_category_in_the_sample() -> None:
    q = floored_probabilities(np.array([1.0, 0.0, 0.0]), 0.1)
    np.testing.assert_allclose(q, [0.8, 0.1, 0.1])
    assert q.sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="sampling_floor"):
        floored_probabilities(np.array([0.5, 0.5]), 0.5)


def test_sampling_floor_draws_rare_categories() -> None:
    space = _space((0.999, 0.0005, 0.0005))
    rng = np.random.default_rng(0)
    plain = space.sample(2000, rng, include_current=False)
    floored = space.sample(2000, np.random.default_rng(0), include_current=False, sampling_floor=0.1)
    assert sum(d["m"] == "W" for d in plain) < 10
    assert 150 < sum(d["m"] == "W" for d in floored) < 250  # ~10%


def test_commit_fixes_the_most_probable_category() -> None:
    space = committed(_space((0.3, 0.6, 0.1)))
    m = space["m"]
    assert m.probabilities == (0.0, 1.0, 0.0) and not m.optimizable  # type: ignore[union-attr]
    assert space["t"].value == 2.0
    designs = space.sample(20, np.random.default_rng(1), sampling_floor=0.2)
    assert {d["m"] for d in designs} == {"Fe"}


def test_moving_towards_a_design_takes_its_values_and_favours_its_category() -> None:
    space = moved_towards(_space((0.5, 0.25, 0.25)), {"t": 7.5, "m": "W"})
    assert space["t"].value == 7.5
    np.testing.assert_allclose(space["m"].probabilities, [0.25, 0.125, 0.625])  # type: ignore[union-attr]


def test_probability_trust_region_limits_the_change_per_call() -> None:
    def prefer_w(theta: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss = -10.0 * theta[3]
        return loss, {}

    free = DesignOptimizer(_space((1 / 3, 1 / 3, 1 / 3)), lr=0.5)
    free.run(prefer_w, np.array([[1.0]]), b=100.0, max_steps=50)
    limited = DesignOptimizer(_space((1 / 3, 1 / 3, 1 / 3)), lr=0.5, max_probability_change=0.2)
    limited.run(prefer_w, np.array([[1.0]]), b=100.0, max_steps=50)
    assert free.probabilities()[0][2] > 0.9
    p = limited.probabilities()[0]
    assert np.max(np.abs(p - 1 / 3)) == pytest.approx(0.2, abs=1e-9)
    assert p[2] == pytest.approx(1 / 3 + 0.2, abs=1e-9) and p.sum() == pytest.approx(1.0)
