"""The adaptive sampling width (success/failure counters) and eq. 5 in units of the width."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.errors import ConfigError
from detopt.optimize.trust_region import (
    covariance_in_width_units,
    mahalanobis,
    updated_covariance,
)
from detopt.optimize.width import WidthRule, WidthState, updated_width

RULE = WidthRule(initial=1.0, minimum=0.125, maximum=4.0, success_tolerance=1, failure_tolerance=1)


def test_width_doubles_after_a_boundary_hitting_success_and_halves_after_a_failure() -> None:
    state = WidthState(1.0)
    state = updated_width(state, improved=True, hit_boundary=True, rule=RULE)
    assert state.width == 2.0
    state = updated_width(state, improved=True, hit_boundary=False, rule=RULE)  # a short step: no reason to widen
    assert state.width == 2.0
    state = updated_width(state, improved=False, hit_boundary=True, rule=RULE)
    assert state.width == 1.0


def test_width_stays_between_floor_and_ceiling() -> None:
    state = WidthState(1.0)
    for _ in range(10):
        state = updated_width(state, True, True, RULE)
    assert state.width == 4.0
    assert updated_width(WidthState(4.0), True, True, RULE, ceiling=2.5).width == 2.5  # the box allows no more
    for _ in range(10):
        state = updated_width(state, False, False, RULE)
    assert state.width == 0.125


def test_failure_tolerance_counts_consecutive_failures() -> None:
    rule = WidthRule(failure_tolerance=2)
    state = updated_width(WidthState(1.0), False, False, rule)
    assert state.width == 1.0 and state.failures == 1
    state = updated_width(state, True, False, rule)  # a success resets the count
    assert state.failures == 0
    state = updated_width(updated_width(state, False, False, rule), False, False, rule)
    assert state.width == 0.5


def test_width_rule_rejects_inconsistent_bounds() -> None:
    with pytest.raises(ConfigError, match="optimizer.width"):
        WidthRule(initial=10.0, maximum=4.0)


def test_eq5_in_width_units_does_not_depend_on_the_parameters_units() -> None:
    # the same step expressed in cm and in m gives the same covariance up to the unit change
    sigma_cm, d_cm = np.array([5.0, 0.5]), np.array([3.0, 0.1])
    k_cm = covariance_in_width_units(sigma_cm, 2.0, d_cm, np.zeros(2))
    k_m = covariance_in_width_units(sigma_cm / 100, 2.0, d_cm / 100, np.zeros(2))
    np.testing.assert_allclose(k_cm, k_m * 1e4)


def test_short_steps_no_longer_trap_the_sampling_width() -> None:
    # raw eq. 5 with sigma 0.5: a step of 0.2 shrinks the variance along it to sigma^2 - 0.2 = 0.05 (the trap)
    sigma, step = np.array([0.5, 0.5]), np.array([0.2, 0.0])
    raw = updated_covariance(sigma, step, np.zeros(2))
    assert raw[0, 0] == pytest.approx(0.05)
    # in width units: |d| = 0.2 / 0.5 = 0.4 widths, s = 0.8 max(1, 1.6) = 1.28 -> variance 1.28 (w sigma)^2
    k = covariance_in_width_units(sigma, 1.0, step, np.zeros(2))
    assert k[0, 0] == pytest.approx(1.28 * 0.25)
    assert k[1, 1] == pytest.approx(0.25)
    # and never below 0.8 (w sigma)^2, however short the step
    tiny = covariance_in_width_units(sigma, 1.0, np.array([1e-6, 0.0]), np.zeros(2))
    assert tiny[0, 0] == pytest.approx(0.8 * 0.25)


def test_long_steps_stretch_the_region_along_the_motion() -> None:
    sigma = np.array([5.0, 5.0])
    step = np.array([10.0, 0.0])  # two sampling widths
    k = covariance_in_width_units(sigma, 1.0, step, np.zeros(2))
    # eq. 5: s = 0.8 max(1, 4 |d|) with |d| = 2 widths -> variance 6.4 (5 cm)^2 along the step, unchanged across it
    assert k[0, 0] == pytest.approx(6.4 * 25.0)
    assert k[1, 1] == pytest.approx(25.0)
    assert mahalanobis(step, k) < mahalanobis(step, np.diag(sigma**2))
