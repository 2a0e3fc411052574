"""Adam over values and logits: trust-region stop (eq. 4), clipping, and state carried across iterations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
