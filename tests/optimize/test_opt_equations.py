"""AIDO eq. 3, 4, 5, 7, 8, 9 on hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detopt.examples.aido import aido_design_space
from detopt.optimize.penalties import (
    boundary_penalty,
    cost_penalty,
    cost_penalty_for,
    expected_cost,
    expected_cost_for,
    length_penalty,
    length_penalty_for,
    weighted_sum,
)
from detopt.optimize.trust_region import (
    mahalanobis,
    trust_region_ok,
    updated_covariance,
)


def test_boundary_penalty_eq3() -> None:
    theta = torch.tensor([100.0, 0.5, 5.0], dtype=torch.float64)
    low = torch.tensor([1.1, 1.1, 1.1], dtype=torch.float64)
    high = torch.tensor([11.0, 11.0, 11.0], dtype=torch.float64)
    # activates at high/1.1 = 10 and low/1.1 = 1: (100-10)^2/2 + (1-0.5)^2/2 + 0, mean over 3
    expected = (0.5 * 90.0**2 + 0.5 * 0.5**2) / 3
    assert float(boundary_penalty(theta, low, high)) == pytest.approx(expected, rel=1e-12)


def test_length_penalty_eq7() -> None:
    assert float(length_penalty(torch.tensor(203.0), 200.0)) * 10 == pytest.approx(90.0)
    assert float(length_penalty(torch.tensor(150.0), 200.0)) == 0.0
    space = aido_design_space()  # 40 + 5 + 10 + 5 + 10 + 5 = 75 cm
    theta = torch.tensor(space.current_encoding())
    assert float(length_penalty_for(space, 70.0)(theta)) == pytest.approx(25.0)


def test_expected_cost_eq8_and_penalty_eq9() -> None:
    lengths = torch.tensor([2.0, 4.0], dtype=torch.float64)
    costs = torch.tensor([[25.0, 4.16], [2500.0, 0.01]], dtype=torch.float64)
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert float(expected_cost(lengths, costs, probs)) == pytest.approx(2 * 25.0 + 4 * 0.01)
    assert float(cost_penalty(torch.tensor(300_000.0), 200_000.0)) == pytest.approx(0.25)
    assert float(cost_penalty(torch.tensor(100_000.0), 200_000.0)) == 0.0


def test_fractional_probabilities_give_probability_weighted_cost() -> None:
    space = aido_design_space()
    theta = torch.tensor(space.current_encoding())  # every probability 0.5/0.5
    absorbers = (40 + 10 + 10) * (0.5 * 25.0 + 0.5 * 4.16)
    scintillators = (5 + 5 + 5) * (0.5 * 2500.0 + 0.5 * 0.01)
    assert float(expected_cost_for(space)(theta)) == pytest.approx(absorbers + scintillators, rel=1e-12)
    # 0.9 PbWO4 in the first scintillator: 5 cm x (0.9 x 2500 + 0.1 x 0.01) instead of 0.5/0.5
    s = space.encoding_slices()["scintillator_0_material"]
    theta2 = theta.clone()
    theta2[s] = torch.tensor([0.9, 0.1], dtype=torch.float64)
    delta = 5 * (0.9 * 2500 + 0.1 * 0.01) - 5 * (0.5 * 2500 + 0.5 * 0.01)
    assert float(expected_cost_for(space)(theta2) - expected_cost_for(space)(theta)) == pytest.approx(delta)
    # cost penalty at a 10k EUR limit: (cost / 10k - 1)^2
    cost = absorbers + scintillators
    assert float(cost_penalty_for(space, 10_000.0)(theta)) == pytest.approx((cost / 10_000 - 1) ** 2)


def test_penalties_compose_and_differentiate() -> None:
    space = aido_design_space()
    theta = torch.tensor(space.current_encoding(), requires_grad=True)
    total = weighted_sum([(length_penalty_for(space, 70.0), 10.0), (cost_penalty_for(space, 10_000.0), 1.0)], theta)
    total.backward()
    assert theta.grad is not None and float(theta.grad[0]) > 0  # thicker front absorber costs more


def test_trust_region_eq4() -> None:
    k = np.diag([4.0, 1.0])
    assert mahalanobis(np.array([2.0, 0.0]), k) == pytest.approx(1.0)
    assert mahalanobis(np.array([1.0, 0.5]), k) == pytest.approx(0.25 + 0.25)
    assert trust_region_ok(np.array([1.0, 0.5]), np.zeros(2), k, b=0.8)
    assert not trust_region_ok(np.array([1.0, 0.8]), np.zeros(2), k, b=0.8)  # 0.25 + 0.64 = 0.89


def test_covariance_update_eq5() -> None:
    sigma = np.array([2.0, 3.0])
    d = np.array([3.0, 4.0])  # |d| = 5, s = 0.8 * max(1, 20) = 16
    k = updated_covariance(sigma, d, np.zeros(2))
    expected = np.diag([4.0, 9.0]) + 15.0 * np.outer(d, d) / 25.0
    np.testing.assert_allclose(k, expected, rtol=1e-12)
    # diag(sigma)^2, not sigma^4 (the public AIDO code's mistake)
    np.testing.assert_allclose(updated_covariance(sigma, np.zeros(2), np.zeros(2)), np.diag([4.0, 9.0]))
    # small step: s = 0.8, variance along d shrinks by 0.2
    small = np.array([0.1, 0.0])
    np.testing.assert_allclose(updated_covariance(sigma, small, np.zeros(2)), np.diag([4.0 - 0.2, 9.0]), rtol=1e-12)


def test_optimization_objective_eq2_adds_surrogate_loss_penalties_and_boundary() -> None:
    from detopt.optimize.penalties import optimization_objective

    theta = torch.tensor([1.0, 2.0], requires_grad=True)
    value = optimization_objective(theta[0] ** 2, 3.0 * theta[1], torch.tensor(0.5))
    assert float(value.detach()) == pytest.approx(1.0 + 6.0 + 0.5)
    value.backward()
    assert theta.grad.tolist() == [2.0, 3.0]  # type: ignore[union-attr]
