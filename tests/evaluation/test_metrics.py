"""Per-condition relative errors, their RMSE, and the CaloChallenge separation power."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.errors import ConfigError, DataError
from detopt.evaluation import metrics


def test_separation_power_is_zero_for_identical_and_one_for_disjoint_samples() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert metrics.separation_power(a, a.copy()) == 0.0
    assert metrics.separation_power(a, a + 100.0) == pytest.approx(1.0)
    assert metrics.separation_power(np.zeros(10), np.ones(10), bins=4) == pytest.approx(1.0)


def test_separation_power_of_two_known_histograms() -> None:
    # h1 = (1, 0), h2 = (1/2, 1/2): S = 1/2 [(1/2)^2 / (3/2) + (1/2)^2 / (1/2)] = 1/3.
    assert metrics.separation_power_from_histograms(np.array([4, 0]), np.array([3, 3])) == pytest.approx(1 / 3)


def test_separation_power_of_equal_distributions_sits_at_the_noise_floor() -> None:
    rng = np.random.default_rng(1)
    n, bins = 20_000, 30
    edges = np.linspace(-3.0, 3.0, bins + 1)
    values = [metrics.separation_power(rng.normal(size=n), rng.normal(size=n), bins=edges) for _ in range(20)]
    floor = metrics.separation_power_noise_floor(n, n, bins)
    assert floor == pytest.approx(30 / (2 * 20_000))
    assert 0.8 < np.mean(values) / floor < 1.2
    # A shift of 0.3 sigma stands far above it.
    shifted = metrics.separation_power(rng.normal(size=n), rng.normal(0.3, 1.0, size=n), bins=edges)
    assert shifted > 10 * floor


def test_relative_errors_of_mean_and_width_per_condition() -> None:
    rng = np.random.default_rng(2)
    sim = np.concatenate([rng.normal(10.0, 1.0, 1000), rng.normal(50.0, 3.0, 1000)])
    ids = np.repeat([7, 9], 1000)
    # A surrogate 2% high on every shower: +2% on the mean and on the width of both conditions.
    e = metrics.relative_errors_per_condition(sim, ids, 1.02 * sim, ids)
    np.testing.assert_array_equal(e.conditions, [7, 9])
    np.testing.assert_allclose(e.rel_mean_error, 0.02, rtol=1e-9)
    np.testing.assert_allclose(e.rel_width_error, 0.02, rtol=1e-9)
    assert e.rmse_mean == pytest.approx(0.02)
    # Errors of +1% and -3% on the means: RMSE = sqrt((1 + 9) / 2) % = 2.236%.
    gen = np.where(ids == 7, sim * 1.01, sim * 0.97)
    e = metrics.relative_errors_per_condition(sim, ids, gen, ids)
    assert e.rmse_mean == pytest.approx(np.sqrt(5e-4))
    numbers = metrics.summary_numbers(metrics.compare_observables({"x": sim}, ids, {"x": gen, "y": gen}, ids))
    assert numbers["x_rel_rmse_mean"] == pytest.approx(np.sqrt(5e-4))
    assert numbers["x_max_abs_rel_mean"] == pytest.approx(0.03)
    assert numbers["x_n_conditions"] == 2 and "y_rel_rmse_mean" not in numbers


def test_bad_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="share no condition"):
        metrics.relative_errors_per_condition(np.ones(4), np.zeros(4), np.ones(4), np.ones(4))
    with pytest.raises(DataError, match="at least 2 showers"):
        metrics.relative_errors_per_condition(np.ones(4), np.zeros(4), np.ones(1), np.zeros(1))
    with pytest.raises(DataError, match="NaN"):
        metrics.separation_power(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(DataError, match="same length"):
        metrics.separation_power_from_histograms(np.ones(3), np.ones(4))


def test_q68_width_is_sigma_for_a_gaussian_and_ignores_a_tail() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 2.0, 100_000)
    assert metrics.width(x, "q68") == pytest.approx(2.0, rel=0.02)
    tail = np.concatenate([x, np.full(500, 40.0)])  # 0.5% of entries 20 sigma out
    assert metrics.width(tail, "std") > 1.4 * metrics.width(x, "std")
    assert metrics.width(tail, "q68") == pytest.approx(metrics.width(x, "q68"), rel=0.01)
    ids = np.zeros(x.size)
    e = metrics.relative_errors_per_condition(x, ids, 1.1 * x, ids, width_kind="q68")
    assert e.rel_width_error[0] == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="width"):
        metrics.width(x, "mad")
