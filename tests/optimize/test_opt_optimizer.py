"""Adam over values and logits: trust-region stop (eq. 4), clipping, and state carried across iterations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.optimize.optimizer import DesignOptimizer, OptimizationStatus
from detopt.optimize.trust_region import mahalanobis


def _space() -> DesignSpace:
    return DesignSpace(parameters=[
        ContinuousParameter(name="a", value=1.0, bounds=(0.0, 10.0), sigma=1.0),
        DiscreteParameter(name="m", categories=["x", "y"], probabilities=[0.5, 0.5]),
    ])


def _objective(theta: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    # pushes a upwards without limit and prefers category y
    loss = -theta[0] - theta[2]
    return loss, {"surrogate": float(loss.detach())}


def test_stops_when_leaving_the_trust_region_and_keeps_the_last_inside_step() -> None:
    opt = DesignOptimizer(_space(), lr=0.1)
    k = np.array([[1.0]])
    result = opt.run(_objective, k, b=0.8, max_steps=1000)
    assert result.status is OptimizationStatus.LEFT_TRUST_REGION
    # Adam moves ~lr per step: sqrt(0.8) / 0.1 -> 8 accepted steps, the 9th leaves the region and is undone
    assert result.steps == 8
    assert mahalanobis(opt.continuous_values() - 1.0, k) < 0.8
    new = opt.updated_space()
    assert new["m"].probabilities[1] > 0.5  # type: ignore[union-attr]


def test_state_round_trip_continues_identically(tmp_path: Path) -> None:
    a = DesignOptimizer(_space(), lr=0.05)
    a.run(_objective, np.array([[100.0]]), max_steps=5)
    a.save(tmp_path)
    b = DesignOptimizer.load(tmp_path, a.updated_space())
    ra = a.run(_objective, np.array([[100.0]]), max_steps=5)
    rb = b.run(_objective, np.array([[100.0]]), max_steps=5)
    assert ra.objective == rb.objective
    np.testing.assert_array_equal(a.continuous_values(), b.continuous_values())
    assert torch.equal(a.logits[0], b.logits[0])


def test_one_learning_rate_serves_parameters_of_very_different_units() -> None:
    # a thickness in micrometres (sigma 5e-4 cm) next to one in metres (sigma 50 cm)
    space = DesignSpace(parameters=[
        ContinuousParameter(name="thin", value=0.01, bounds=(0.0, 1.0), sigma=5e-4),
        ContinuousParameter(name="thick", value=100.0, bounds=(0.0, 1000.0), sigma=50.0),
    ])

    def push(theta: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return -(theta[0] / 5e-4 + theta[1] / 50.0), {}

    raw = DesignOptimizer(space, lr=0.1)
    raw.run(push, np.diag([5e-4, 50.0]) ** 2, b=1e9, max_steps=10)
    normalized = DesignOptimizer(space, lr=0.1, scale=np.array([5e-4, 50.0]))
    normalized.run(push, np.diag([5e-4, 50.0]) ** 2, b=1e9, max_steps=10)
    moved_raw = (raw.continuous_values() - [0.01, 100.0]) / [5e-4, 50.0]
    moved = (normalized.continuous_values() - [0.01, 100.0]) / [5e-4, 50.0]
    np.testing.assert_allclose(moved, [1.0, 1.0], rtol=1e-6)  # 10 steps of 0.1 sigma each, for both
    assert moved_raw[1] < 0.03  # in raw units 0.1 cm per step: 1/50 of a sigma for the thick layer


def test_reset_moments_forgets_a_large_early_gradient() -> None:
    space = DesignSpace(parameters=[ContinuousParameter(name="a", value=0.0, bounds=(-100.0, 100.0), sigma=1.0)])

    def steep(theta: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return -1e4 * theta[0], {}

    def gentle(theta: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return theta[0], {}  # now the design should move the other way at full speed

    carried, fresh = DesignOptimizer(space, lr=0.1), DesignOptimizer(space, lr=0.1)
    for opt in (carried, fresh):
        opt.run(steep, np.array([[1e6]]), b=1e9, max_steps=20)
    fresh.reset_moments()
    start_c, start_f = carried.continuous_values()[0], fresh.continuous_values()[0]
    carried.run(gentle, np.array([[1e6]]), b=1e9, max_steps=5)
    fresh.run(gentle, np.array([[1e6]]), b=1e9, max_steps=5)
    assert start_f - fresh.continuous_values()[0] == pytest.approx(0.5, rel=1e-6)
    assert carried.continuous_values()[0] > start_c  # the carried momentum still pushes the old way
