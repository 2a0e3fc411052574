"""Trust region of the surrogate (AIDO eq. 4) and the sampling covariance update (AIDO eq. 5).

Both act on the optimizable continuous parameters only (the rows and columns of the
sampling covariance K, :attr:`detopt.design.DesignSpace.optimizable_continuous`).
"""

from __future__ import annotations

import numpy as np

from detopt.errors import ConfigError

__all__ = [
    "COVARIANCE_EIGENVALUE_FLOOR",
    "STRETCH_FACTOR",
    "STRETCH_SCALE",
    "TRUST_REGION_B",
    "covariance_in_width_units",
    "mahalanobis",
    "stretch_scale",
    "trust_region_ok",
    "updated_covariance",
]

TRUST_REGION_B = 0.8
"""AIDO eq. 4: b, the (conservative) fraction of the sampled region trusted; paper value 0.8."""

STRETCH_FACTOR = 0.8
"""AIDO eq. 5: s = 0.8 max(1, 4 |d|)."""

STRETCH_SCALE = 4.0
"""AIDO eq. 5: s = 0.8 max(1, 4 |d|)."""

COVARIANCE_EIGENVALUE_FLOOR = 1e-6
"""Relative floor (times max sigma^2) on the eigenvalues of K: eq. 5 can shrink the variance along d by
0.2 (s = 0.8 for |d| < 0.25), which makes K indefinite when some sigma^2 < 0.2; the floor keeps K usable."""


def mahalanobis(delta: np.ndarray, covariance: np.ndarray) -> float:
    """AIDO eq. 4 left-hand side: delta^T K^-1 delta (squared Mahalanobis distance)."""
    delta = np.asarray(delta, dtype=np.float64)
    if delta.size == 0:
        return 0.0
    return float(delta @ np.linalg.solve(np.asarray(covariance, dtype=np.float64), delta))


def trust_region_ok(theta_new: np.ndarray, theta_center: np.ndarray, covariance: np.ndarray, b: float = TRUST_REGION_B) -> bool:
    """AIDO eq. 4: (theta_new - theta_c)^T K^-1 (theta_new - theta_c) < b."""
    return mahalanobis(np.asarray(theta_new) - np.asarray(theta_center), covariance) < b


def stretch_scale(distance: float) -> float:
    """AIDO eq. 5: s = 0.8 max(1, 4 |d|)."""
    return STRETCH_FACTOR * max(1.0, STRETCH_SCALE * distance)


def updated_covariance(sigma: np.ndarray, theta_new: np.ndarray, theta_center: np.ndarray) -> np.ndarray:
    """AIDO eq. 5: K = diag(sigma)^2 + (s - 1) d d^T / |d|^2, d = theta_new - theta_c, s = 0.8 max(1, 4|d|).

    diag(sigma)^2 (variances, not sigma^4 as in the public AIDO code). With d = 0 this is
    diag(sigma)^2. Eigenvalues are floored at ``COVARIANCE_EIGENVALUE_FLOOR * max(sigma)^2``
    so that K stays positive definite for small sigma.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim != 1 or np.any(~np.isfinite(sigma)) or np.any(sigma <= 0):
        raise ConfigError("sigma", f"must be a 1-d array of finite values > 0, got {sigma!r}")
    d = np.asarray(theta_new, dtype=np.float64) - np.asarray(theta_center, dtype=np.float64)
    if d.shape != sigma.shape:
        raise ConfigError("theta_new", f"expected shape {sigma.shape} (like sigma), got {d.shape}")
    k = np.diag(sigma**2)
    norm = float(np.linalg.norm(d))
    if norm == 0.0 or sigma.size == 0:
        return k
    k = k + (stretch_scale(norm) - 1.0) * np.outer(d, d) / norm**2
    k = 0.5 * (k + k.T)
    values, vectors = np.linalg.eigh(k)
    floor = COVARIANCE_EIGENVALUE_FLOOR * float(np.max(sigma)) ** 2
    if values.min() < floor:
        k = (vectors * np.maximum(values, floor)) @ vectors.T
        k = 0.5 * (k + k.T)
    return k


def covariance_in_width_units(sigma: np.ndarray, width: float, theta_new: np.ndarray, theta_center: np.ndarray) -> np.ndarray:
    """AIDO eq. 5 applied in units of the sampling width w sigma: K = D K_n D, D = diag(w sigma), K_n = eq. 5 of d / (w sigma).

    In these units every parameter has variance 1 before the stretch, so the rule no longer
    depends on the parameters' units (in raw units a step shorter than 0.25 shrinks the variance
    along it to sigma^2 - 0.2, an absorbing trap for sigma < 0.5).
    """
    scale = float(width) * np.asarray(sigma, dtype=np.float64)
    if scale.ndim != 1 or np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ConfigError("width", f"width x sigma must be finite and > 0, got {scale!r}")
    d = (np.asarray(theta_new, dtype=np.float64) - np.asarray(theta_center, dtype=np.float64)) / scale
    k = updated_covariance(np.ones_like(scale), d, np.zeros_like(d))
    return k * np.outer(scale, scale)
