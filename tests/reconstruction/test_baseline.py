"""The linear calibration baseline: the exact weighted least-squares minimum of AIDO eq. 10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detopt.errors import DataError
from detopt.reconstruction import LinearCalibration


def test_recovers_an_exact_linear_response() -> None:
    rng = np.random.default_rng(0)
    e_true = rng.uniform(1, 20, 500)
    # Two layers, a 12% sampling fraction in total and a 0.3 GeV offset: E = S / 0.12 + 0.3.
    s = (e_true - 0.3) * 0.12
    features = np.stack([0.25 * s, 0.75 * s], axis=1)
    cal = LinearCalibration().fit(features, None, e_true)
    assert cal.coefficients is not None
    np.testing.assert_allclose(cal.coefficients, [[1 / 0.12, 0.3]], rtol=1e-10)
    assert cal.loss(features, None, e_true) == pytest.approx(0.0, abs=1e-20)


def test_minimizes_eq10_exactly() -> None:
    """Closed form = solution of the weighted normal equations; any nudge raises the loss."""
    rng = np.random.default_rng(1)
    e_true = rng.uniform(1, 20, 2000)
    s = e_true * 0.05 * rng.normal(1, 0.2, e_true.size)
    cal = LinearCalibration().fit(s, None, e_true)
    w = 1 / (e_true + 1)
    x = np.stack([s, np.ones_like(s)], axis=1)
    normal = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * e_true))
    np.testing.assert_allclose(cal.coefficients[0], normal, rtol=1e-9)
    best = cal.loss(s, None, e_true)
    for da, db in [(0.05, 0), (-0.05, 0), (0, 0.02), (0, -0.02)]:
        manual = np.mean(((normal[0] + da) * s + normal[1] + db - e_true) ** 2 * w)
        assert manual > best
    # Unweighted least squares is a different (worse for eq. 10) answer.
    ols = np.linalg.lstsq(x, e_true, rcond=None)[0]
    assert np.mean((x @ ols - e_true) ** 2 * w) > best


def test_one_calibration_per_particle() -> None:
    """A non-compensating calorimeter: pions give 60% of the photon signal; per-class fits see it."""
    rng = np.random.default_rng(2)
    n = 1000
    e_true = rng.uniform(1, 20, n)
    pion = rng.integers(0, 2, n)
    s = e_true * np.where(pion == 1, 0.06, 0.10)
    ctx = np.eye(2)[pion]
    per_class = LinearCalibration().fit(s, ctx, e_true)
    np.testing.assert_allclose(per_class.coefficients[:, 0], [10.0, 1 / 0.06], rtol=1e-9)
    assert per_class.loss(s, ctx, e_true) == pytest.approx(0.0, abs=1e-20)
    single = LinearCalibration().fit(s, None, e_true)
    assert single.loss(s, None, e_true) > 0.5
    # torch input works the same.
    assert per_class.predict(torch.tensor(s), torch.tensor(ctx)) == pytest.approx(per_class.predict(s, ctx))


def test_constant_signal_falls_back_to_the_weighted_mean() -> None:
    e_true = np.array([1.0, 3.0, 9.0])
    cal = LinearCalibration().fit(np.zeros(3), None, e_true)
    w = 1 / (e_true + 1)
    assert cal.predict(np.zeros(3)) == pytest.approx(np.full(3, (w * e_true).sum() / w.sum()))


def test_bad_input() -> None:
    cal = LinearCalibration()
    with pytest.raises(DataError, match="call fit"):
        cal.predict(np.ones(3))
    with pytest.raises(DataError, match="features: contains 1 NaN"):
        cal.fit(np.array([1.0, np.nan]), None, np.ones(2))
    with pytest.raises(DataError, match=r"e_true: expected shape \(2,\)"):
        cal.fit(np.ones(2), None, np.ones(3))
    with pytest.raises(DataError, match="one-hot"):
        cal.fit(np.ones(2), np.array([[0.5, 0.5], [1, 0]]), np.ones(2))
    with pytest.raises(DataError, match="class 1 has no events"):
        cal.fit(np.ones(2), np.array([[1.0, 0.0], [1.0, 0.0]]), np.ones(2))
    cal.fit(np.arange(4.0), np.eye(2)[[0, 1, 0, 1]], np.arange(4.0) + 1)
    with pytest.raises(DataError, match="pass the one-hot context"):
        cal.predict(np.ones(2))
