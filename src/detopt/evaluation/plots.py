"""Figures comparing simulated and generated showers: distributions and profiles with a ratio panel
(generated / simulated), and autograd vs finite-difference gradients. Each function writes one
PNG atomically (Agg backend, figure closed) and returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detopt.errors import DataError

__all__ = ["OBSERVABLE_LABELS", "plot_distribution", "plot_gradients", "plot_observables", "plot_profile"]

#: Axis labels of the observables of `detopt.evaluation.observables`.
OBSERVABLE_LABELS: Mapping[str, str] = {
    "total_energy_gev": "deposited energy [GeV]",
    "energy_ratio": "deposited / beam energy",
    "radius_cm": "energy-weighted radius <r> [cm]",
    "dispersion_cm": "radial dispersion [cm]",
    "long_centre_cm": "longitudinal centre <z> [cm]",
    "long_spread_cm": "longitudinal spread [cm]",
}

_COLORS = ("black", "tab:red")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    from detopt.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _two_panels(plt: Any) -> tuple[Any, Any, Any]:
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    return fig, top, bottom


def _ratio(num: np.ndarray, num_err: np.ndarray, den: np.ndarray, den_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """num / den and its error (uncorrelated relative errors added in quadrature); NaN where den = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / den, np.nan)
        rel = np.sqrt(np.where(num > 0, (num_err / num) ** 2, 0.0) + np.where(den > 0, (den_err / den) ** 2, 0.0))
    return r, np.abs(r) * rel


def _ratio_panel(ax: Any, x: np.ndarray, ratio: np.ndarray, err: np.ndarray, edges: np.ndarray | None, xlabel: str) -> None:
    ax.axhline(1.0, color=_COLORS[0], lw=0.8)
    ax.errorbar(x, ratio, yerr=err, fmt="o", ms=3, color=_COLORS[1], xerr=None if edges is None else np.diff(edges) / 2)
    finite = ratio[np.isfinite(ratio)]
    spread = float(np.nanmax(np.abs(finite - 1.0))) if finite.size else 0.1
    half = min(max(1.2 * spread, 0.05), 1.0)
    ax.set_ylim(1.0 - half, 1.0 + half)
    ax.set_ylabel("surr. / sim.")
    ax.set_xlabel(xlabel)


def plot_distribution(
    sim: np.ndarray, gen: np.ndarray, path: str | Path, *, xlabel: str = "", bins: int | np.ndarray = 40,
    labels: Sequence[str] = ("simulation", "surrogate"), title: str | None = None, logy: bool = False,
) -> Path:
    """Normalized histograms of one observable (simulation filled, surrogate as a line, binned over
    both samples' range) with the ratio surrogate / simulation and its statistical error below."""
    import mplhep

    a = np.asarray(sim, dtype=np.float64).reshape(-1)
    b = np.asarray(gen, dtype=np.float64).reshape(-1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        raise DataError("plot_distribution: both samples need finite entries")
    if isinstance(bins, (int, np.integer)):
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    ha, hb = np.histogram(a, edges)[0].astype(float), np.histogram(b, edges)[0].astype(float)
    width = np.diff(edges)
    na, nb = ha.sum() * width, hb.sum() * width
    plt = _pyplot()
    fig, top, bottom = _two_panels(plt)
    mplhep.histplot(ha / na, edges, yerr=np.sqrt(ha) / na, ax=top, histtype="fill", color="0.8", label=labels[0])
    mplhep.histplot(hb / nb, edges, yerr=np.sqrt(hb) / nb, ax=top, histtype="step", color=_COLORS[1], label=labels[1])
    top.set_ylabel("normalized entries")
    if logy:
        top.set_yscale("log")
    top.legend(framealpha=1.0, edgecolor="none")
    if title:
        top.set_title(title, fontsize=10)
    r, err = _ratio(hb / nb, np.sqrt(hb) / nb, ha / na, np.sqrt(ha) / na)
    _ratio_panel(bottom, 0.5 * (edges[1:] + edges[:-1]), r, err, edges, xlabel)
    return _save(fig, path)


def plot_profile(
    sim: np.ndarray, gen: np.ndarray, edges: np.ndarray, path: str | Path, *, xlabel: str = "",
    ylabel: str = "mean energy [GeV]", labels: Sequence[str] = ("simulation", "surrogate"),
    title: str | None = None, logy: bool = False,
) -> Path:
    """Mean profile (e.g. energy per depth slice ``(n, k)`` over ``edges (k + 1,)``) of both samples
    with the standard error of the mean, and their ratio below."""
    a = np.asarray(sim, dtype=np.float64)
    b = np.asarray(gen, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64).reshape(-1)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or e.size != a.shape[1] + 1:
        raise DataError(f"plot_profile: expected (n, k), (m, k) and k + 1 edges, got {a.shape}, {b.shape}, {e.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise DataError("plot_profile: needs at least 2 showers per sample")
    x = 0.5 * (e[1:] + e[:-1])
    ma, sa = a.mean(axis=0), a.std(axis=0, ddof=1) / np.sqrt(a.shape[0])
    mb, sb = b.mean(axis=0), b.std(axis=0, ddof=1) / np.sqrt(b.shape[0])
    from matplotlib.patches import Patch

    plt = _pyplot()
    fig, top, bottom = _two_panels(plt)
    top.stairs(ma, e, fill=True, color="0.8")
    points = top.errorbar(x, mb, yerr=sb, fmt="o", ms=3, color=_COLORS[1])
    top.set_ylabel(ylabel)
    if logy:
        top.set_yscale("log")
    top.legend([Patch(facecolor="0.8", edgecolor="0.4"), points], list(labels), framealpha=1.0, edgecolor="none")
    if title:
        top.set_title(title, fontsize=10)
    r, err = _ratio(mb, sb, ma, sa)
    _ratio_panel(bottom, x, r, err, None, xlabel)
    return _save(fig, path)


def plot_observables(
    sim: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], folder: str | Path, *, prefix: str = "",
    title: str | None = None, bins: int = 40,
) -> list[Path]:
    """`plot_distribution` for every observable present in both dictionaries, one PNG each
    (``<folder>/<prefix><name>.png``)."""
    folder = Path(folder)
    out = []
    for name in sim:
        if name in gen:
            out.append(plot_distribution(sim[name], gen[name], folder / f"{prefix}{name}.png",
                                         xlabel=OBSERVABLE_LABELS.get(name, name), bins=bins, title=title))
    return out


def plot_gradients(
    autograd: np.ndarray, fd_mean: np.ndarray, fd_err: np.ndarray, parameters: Sequence[str], path: str | Path,
    *, design_labels: Sequence[str] | None = None, title: str | None = None,
) -> Path:
    """One panel per parameter: the autograd gradient and the finite difference (+- 2 sigma) at each design."""
    g = np.atleast_2d(np.asarray(autograd, dtype=np.float64))
    f = np.atleast_2d(np.asarray(fd_mean, dtype=np.float64))
    s = np.atleast_2d(np.asarray(fd_err, dtype=np.float64))
    if not (g.shape == f.shape == s.shape) or g.shape[1] != len(parameters):
        raise DataError(f"plot_gradients: shapes {g.shape}, {f.shape}, {s.shape} for {len(parameters)} parameters")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(parameters), figsize=(4.5 * len(parameters), 3.6), squeeze=False)
    x = np.arange(g.shape[0])
    for k, (ax, name) in enumerate(zip(axes[0], parameters)):
        ax.errorbar(x - 0.08, f[:, k], yerr=2 * s[:, k], fmt="o", ms=4, color=_COLORS[0], label="simulation FD (2 sigma)")
        ax.plot(x + 0.08, g[:, k], "s", ms=4, color=_COLORS[1], label="surrogate autograd")
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xticks(x)
        ax.set_xticklabels(design_labels if design_labels is not None else [str(i) for i in x], rotation=30, fontsize=8)
        ax.set_title(f"dU / d {name}", fontsize=10)
    axes[0][0].legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
