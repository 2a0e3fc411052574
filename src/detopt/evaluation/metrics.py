"""Agreement between simulated and generated showers: per-condition relative errors, their RMSE over
conditions, and the CaloChallenge separation power (DESIGN.md section 4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from detopt.errors import ConfigError, DataError

__all__ = [
    "ConditionErrors",
    "compare_observables",
    "relative_errors_per_condition",
    "rms",
    "separation_power",
    "separation_power_from_histograms",
    "separation_power_noise_floor",
    "summary_numbers",
    "width",
]


@dataclass(frozen=True)
class ConditionErrors:
    """Relative errors of one observable, per condition, and their RMSE over conditions.

    ``conditions (m,)``: the condition ids compared (present in both samples);
    ``rel_mean_error (m,)`` = (mean_gen - mean_sim) / |mean_sim|; ``rel_width_error (m,)`` =
    (width_gen - width_sim) / width_sim (`width`); ``rmse_mean`` and ``rmse_width`` their root mean squares.
    """

    conditions: np.ndarray
    rel_mean_error: np.ndarray
    rel_width_error: np.ndarray
    rmse_mean: float
    rmse_width: float


def rms(values: np.ndarray) -> float:
    """Root mean square, sqrt(mean(x^2)) (NaN for an empty array)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.sqrt(np.mean(v * v))) if v.size else float("nan")


def _check_pair(values: np.ndarray, ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    i = np.asarray(ids).reshape(-1)
    if v.shape != i.shape:
        raise DataError(f"{what}: {v.size} values but {i.size} condition ids")
    return v, i


#: Width measures: the standard deviation, or half the central 68% interval (q84 - q16) / 2, which
#: equals sigma for a Gaussian but is not dominated by a few showers in a tail (e.g. late, leaking showers).
WIDTHS = ("std", "q68")


def width(values: np.ndarray, kind: str = "std") -> float:
    """The width of a sample: ``std`` (n - 1) or ``q68`` = (q84.13 - q15.87) / 2."""
    v = np.asarray(values, dtype=np.float64)
    if kind == "std":
        return float(v.std(ddof=1))
    if kind == "q68":
        lo, hi = np.percentile(v, [15.865, 84.135])
        return float(0.5 * (hi - lo))
    raise ConfigError("width", f"must be one of {', '.join(WIDTHS)}, got {kind!r}")


def relative_errors_per_condition(
    sim: np.ndarray, sim_ids: np.ndarray, gen: np.ndarray, gen_ids: np.ndarray, *, width_kind: str = "std",
) -> ConditionErrors:
    """Relative error of the mean and of the width (`width`: standard deviation by default) of ``gen``
    with respect to ``sim``, condition by condition (ids shared by both samples; >= 2 showers each)."""
    if width_kind not in WIDTHS:
        raise ConfigError("width", f"must be one of {', '.join(WIDTHS)}, got {width_kind!r}")
    s, si = _check_pair(sim, sim_ids, "sim")
    g, gi = _check_pair(gen, gen_ids, "gen")
    common = np.intersect1d(np.unique(si), np.unique(gi))
    if common.size == 0:
        raise DataError("relative_errors_per_condition: the two samples share no condition id")
    rel_mean, rel_width = np.empty(common.size), np.empty(common.size)
    for k, c in enumerate(common):
        a, b = s[si == c], g[gi == c]
        if a.size < 2 or b.size < 2:
            raise DataError(f"condition {c!r}: needs at least 2 showers in each sample, got {a.size} and {b.size}")
        mean_sim, width_sim = a.mean(), width(a, width_kind)
        rel_mean[k] = (b.mean() - mean_sim) / max(abs(mean_sim), 1e-300)
        rel_width[k] = (width(b, width_kind) - width_sim) / max(width_sim, 1e-300)
    return ConditionErrors(common, rel_mean, rel_width, rms(rel_mean), rms(rel_width))


def compare_observables(
    sim: Mapping[str, np.ndarray], sim_ids: np.ndarray, gen: Mapping[str, np.ndarray], gen_ids: np.ndarray,
    *, width_kind: str = "std",
) -> dict[str, ConditionErrors]:
    """`relative_errors_per_condition` for every observable present in both dictionaries."""
    names = [k for k in sim if k in gen]
    if not names:
        raise DataError("compare_observables: no observable in common")
    return {k: relative_errors_per_condition(sim[k], sim_ids, gen[k], gen_ids, width_kind=width_kind) for k in names}


def separation_power_from_histograms(h1: np.ndarray, h2: np.ndarray) -> float:
    """S = 1/2 sum_i (h1_i - h2_i)^2 / (h1_i + h2_i) of histograms normalized to unit sum
    (the CaloChallenge evaluation's definition, DESIGN.md section 4): 0 identical, 1 disjoint."""
    a = np.asarray(h1, dtype=np.float64)
    b = np.asarray(h2, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"separation power: histograms must be 1-d of the same length, got {a.shape} and {b.shape}")
    if a.sum() <= 0 or b.sum() <= 0 or (a < 0).any() or (b < 0).any():
        raise DataError("separation power: histograms need non-negative counts and a positive sum")
    a, b = a / a.sum(), b / b.sum()
    both = (a + b) > 0
    return float(0.5 * np.sum((a[both] - b[both]) ** 2 / (a[both] + b[both])))


def separation_power(
    reference: np.ndarray, other: np.ndarray, bins: int | np.ndarray = 30, range_: tuple[float, float] | None = None
) -> float:
    """CaloChallenge separation power of two samples of one observable.

    ``bins``: a number of equal-width bins over ``range_`` (default: the range of both samples
    together, so that disjoint samples give 1 and no entry falls outside) or explicit edges;
    entries outside explicit edges are dropped. For two finite samples of the *same*
    distribution S is not 0 but about `separation_power_noise_floor`.
    """
    a = np.asarray(reference, dtype=np.float64).reshape(-1)
    b = np.asarray(other, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise DataError("separation power: both samples need at least one entry")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("separation power: samples contain NaN or infinite values")
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise ConfigError("bins", f"must be >= 1, got {bins}")
        lo, hi = range_ if range_ is not None else (min(a.min(), b.min()), max(a.max(), b.max()))
        if hi <= lo:
            return 0.0 if np.array_equal(np.unique(a), np.unique(b)) else 1.0
        edges = np.linspace(lo, hi, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    return separation_power_from_histograms(np.histogram(a, edges)[0], np.histogram(b, edges)[0])


def separation_power_noise_floor(n1: int, n2: int, occupied_bins: int) -> float:
    """Expected separation power of two samples of sizes n1, n2 drawn from the same distribution,
    about (K / 4)(1/n1 + 1/n2) for K occupied bins (Poisson counts; the first-order expansion of
    E[(h1 - h2)^2 / (h1 + h2)] = (1/n1 + 1/n2) / 2 per bin). A measured S is only meaningful above it."""
    return 0.25 * occupied_bins * (1.0 / n1 + 1.0 / n2)


def summary_numbers(errors: Mapping[str, ConditionErrors]) -> dict[str, float]:
    """Flat ``{observable}_rel_rmse_mean`` / ``_rel_rmse_width`` / ``_max_abs_rel_mean`` numbers for a JSON file."""
    out: dict[str, float] = {}
    for name, e in errors.items():
        out[f"{name}_rel_rmse_mean"] = e.rmse_mean
        out[f"{name}_rel_rmse_width"] = e.rmse_width
        out[f"{name}_max_abs_rel_mean"] = float(np.max(np.abs(e.rel_mean_error)))
        out[f"{name}_n_conditions"] = float(e.conditions.size)
    return out
