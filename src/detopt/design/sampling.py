"""Drawing designs around the current one: a multivariate normal truncated to the bounds.

AIDO paper, section 4.1: "we sample N times from the multivariate normal
distribution N(theta, K_theta) [...] sampled parameters that lie outside the
allowed boundaries are resampled until valid." Redrawing the whole vector of a
rejected draw gives exactly the normal truncated to the box of bounds, also when
K has correlations (after the covariance update, eq. 5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from detopt.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_REDRAW_ROUNDS",
    "sample_truncated_normal",
    "validate_covariance",
]

DEFAULT_MAX_REDRAW_ROUNDS = 100
"""Rounds of vectorized redraws before giving up on draws outside the bounds."""

_MAX_CANDIDATES_PER_ROUND = 1_000_000
"""Cap on the number of candidate vectors drawn in one round (bounds memory)."""

_SYMMETRY_RTOL = 1e-8


def validate_covariance(covariance: object, names: Sequence[str]) -> np.ndarray:
    """Return ``covariance`` as a float64 symmetric positive-definite (d, d) array, d = len(names).

    ``names`` are the optimizable continuous parameters, in declaration order,
    that the rows and columns refer to. Raises ConfigError("covariance", ...)
    on a wrong shape, non-finite entries, asymmetry or a matrix that is not
    positive definite.
    """
    d = len(names)
    order = ", ".join(names) if names else "none"
    try:
        matrix = np.asarray(covariance, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("covariance", f"must be a numeric ({d}, {d}) array, got {type(covariance).__name__}") from None
    if matrix.shape != (d, d):
        raise ConfigError(
            "covariance",
            f"must have shape ({d}, {d}) (rows and columns: {order}), got shape {matrix.shape}",
        )
    if not np.all(np.isfinite(matrix)):
        raise ConfigError("covariance", "all entries must be finite (no NaN or inf)")
    scale = float(np.max(np.abs(matrix))) if d else 0.0
    if not np.allclose(matrix, matrix.T, rtol=_SYMMETRY_RTOL, atol=_SYMMETRY_RTOL * scale):
        worst = np.unravel_index(int(np.argmax(np.abs(matrix - matrix.T))), matrix.shape)
        raise ConfigError(
            "covariance",
            f"must be symmetric; entry [{names[worst[0]]}, {names[worst[1]]}] = {matrix[worst]:.6g} "
            f"differs from its transpose {matrix.T[worst]:.6g}",
        )
    matrix = 0.5 * (matrix + matrix.T)
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(matrix)[0])
        raise ConfigError(
            "covariance",
            f"must be positive definite (rows and columns: {order}); smallest eigenvalue is {smallest:.6g}",
        ) from None
    return matrix


def sample_truncated_normal(
    mean: np.ndarray,
    covariance: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    names: Sequence[str] | None = None,
    max_rounds: int = DEFAULT_MAX_REDRAW_ROUNDS,
) -> np.ndarray:
    """Draw ``n`` vectors from N(mean, covariance) restricted to lower <= x <= upper; shape (n, d).

    Draws are made in vectorized rounds; a vector with any entry outside the
    bounds is rejected and redrawn as a whole. Each round draws enough candidates
    for the acceptance rate seen so far. ``covariance`` must already be valid
    (see :func:`validate_covariance`). Raises ConfigError when fewer than ``n``
    vectors fall inside the bounds after ``max_rounds`` rounds.
    """
    mean = np.asarray(mean, dtype=np.float64)
    d = mean.shape[0]
    out = np.empty((n, d), dtype=np.float64)
    if n == 0 or d == 0:
        return out
    chol = np.linalg.cholesky(np.asarray(covariance, dtype=np.float64))
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)

    filled = 0
    drawn = 0
    accepted = 0
    outside = np.zeros(d, dtype=np.int64)
    for _ in range(max_rounds):
        need = n - filled
        rate = accepted / drawn if accepted else 1.0 / (drawn + 1)
        batch = min(max(need, math.ceil(1.2 * need / rate)), max(need, _MAX_CANDIDATES_PER_ROUND // d))
        x = mean + rng.standard_normal((batch, d)) @ chol.T
        in_box = (x >= lower) & (x <= upper)
        ok = np.all(in_box, axis=1)
        outside += np.sum(~in_box, axis=0)
        drawn += batch
        accepted += int(ok.sum())
        good = x[ok][:need]
        out[filled : filled + len(good)] = good
        filled += len(good)
        if filled == n:
            return out

    labels = list(names) if names is not None else [str(i) for i in range(d)]
    worst = int(np.argmax(outside))
    raise ConfigError(
        "covariance",
        f"could draw only {filled} of {n} designs inside the bounds after {max_rounds} rounds "
        f"({drawn} draws, acceptance {accepted / drawn:.2e}); most often out of bounds: {labels[worst]} "
        f"({outside[worst] / drawn:.1%} of draws). Reduce the sampling width or move the value away from the bound",
    )
