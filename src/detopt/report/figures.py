"""Matplotlib figures of a run, from the iteration records (``load_records``) and validation files.

Each function takes the records (and an output path) and writes one PNG; they use the
non-interactive Agg backend and close their figures.
"""

from __future__ import annotations

import functools

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_composition", "plot_constraints", "plot_losses", "plot_probabilities", "plot_validation"]

Record = Mapping[str, Any]

_MATERIAL_COLORS = {"Pb": "#4d4d4d", "Fe": "#b5651d", "PbWO4": "#1f77b4", "polystyrene": "#9ecae1"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def hep_style(plot: Callable[..., Path]) -> Callable[..., Path]:
    """Draw in the field's style (mplhep's ROOT style: ticks on all sides, inward; sans-serif labels)."""

    @functools.wraps(plot)
    def wrapped(*args: Any, **kwargs: Any) -> Path:
        import mplhep

        with _pyplot().style.context(mplhep.style.ROOT), _pyplot().rc_context({"font.size": 12, "axes.labelsize": 12,
                                                                             "legend.fontsize": 10}):
            return plot(*args, **kwargs)

    return wrapped


def _save(fig: Any, path: Path) -> Path:
    from detopt.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _stack(
    layers: Sequence[str], values: Mapping[str, float], probabilities: Mapping[str, Sequence[float]],
    categories: Mapping[str, Sequence[str]] | None,
) -> list[tuple[float, str, str, float]]:
    """Per layer from the front: thickness (cm), most probable material, its colour and its probability."""
    out = []
    for stem in layers:
        probs = probabilities[f"{stem}_material"]
        names = (categories or {}).get(f"{stem}_material")
        k = int(np.argmax(probs))
        material = names[k] if names is not None else str(k)
        out.append((float(values[f"{stem}_thickness"]), material, _MATERIAL_COLORS.get(material, f"C{k}"), float(max(probs))))
    return out


def _layers(record: Record) -> list[str]:
    """Layer stems ``x`` having both ``x_thickness`` and ``x_material``, in the order of the values."""
    stems = [name.removesuffix("_thickness") for name in record["values"] if name.endswith("_thickness")]
    return [s for s in stems if f"{s}_material" in record["probabilities"]]


@hep_style
def plot_composition(records: Sequence[Record], path: Path, categories: Mapping[str, Sequence[str]] | None = None) -> Path:
    """AIDO figure 5: the longitudinal composition of the current design at every iteration.

    Each column is one iteration; layers are stacked from the front (bottom) and coloured by
    the most probable material, shaded by its probability.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    layers = _layers(records[0]) if records else []
    rows = [*records, None]  # the design after the last iteration
    for i, record in enumerate(rows):
        values = records[-1]["next_values"] if record is None else record["values"]
        probabilities = records[-1]["next_probabilities"] if record is None else record["probabilities"]
        bottom = 0.0
        for thickness, _, color, probability in _stack(layers, values, probabilities, categories):
            ax.bar(i, thickness, bottom=bottom, width=1.0, color=color, alpha=0.35 + 0.65 * probability, edgecolor="none")
            bottom += thickness
    if categories:
        seen = {c for names in categories.values() for c in names}
        for name in sorted(seen):
            ax.bar(0, 0, color=_MATERIAL_COLORS.get(name, "grey"), label=name)
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("depth along the beam [cm]")
    ax.set_title("Detector composition (beam enters at 0; shade = material probability)")
    return _save(fig, path)


@hep_style
def plot_losses(records: Sequence[Record], path: Path) -> Path:
    """AIDO figure 6: reconstruction loss L of the current design and the surrogate loss L'."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    it = [r["iteration"] for r in records]
    ax.plot(it, [r["reconstruction_loss"] for r in records], "o-", label="L (reconstruction, current design)")
    ax.plot(it, [r["surrogate_loss_start"] for r in records], "s--", label="L' (surrogate, current design)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean per-event loss (training set)")
    ax.set_yscale("log")
    ax.legend()
    return _save(fig, path)


@hep_style
def plot_constraints(
    records: Sequence[Record], path: Path, limits: Mapping[str, float | None] | None = None, units: Mapping[str, str] | None = None
) -> Path:
    """AIDO figure 8: each monitored constraint (cost, length) against its limit."""
    plt = _pyplot()
    names = list(records[0]["monitors"]) if records else []
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(5 * max(len(names), 1), 3.8), squeeze=False)
    it = [r["iteration"] for r in records] + ([records[-1]["iteration"] + 1] if records else [])
    for ax, name in zip(axes[0], names):
        values = [r["monitors"][name] for r in records] + [records[-1]["next_monitors"][name]]
        ax.plot(it, values, "o-", label=name)
        limit = (limits or {}).get(name)
        if limit is not None:
            ax.axhline(limit, color="red", ls="--", label="limit")
        ax.set_xlabel("iteration")
        unit = (units or {}).get(name) or {"length_cm": "cm", "cost_eur": "EUR", "built_cost_eur": "EUR"}.get(name, "")
        ax.set_ylabel(f"{name} [{unit}]" if unit else name)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


@hep_style
def plot_probabilities(records: Sequence[Record], path: Path, categories: Mapping[str, Sequence[str]] | None = None) -> Path:
    """AIDO figure 9: the probability of every category of every discrete parameter."""
    plt = _pyplot()
    names = list(records[0]["probabilities"]) if records else []
    cols = 2
    nrows = max((len(names) + cols - 1) // cols, 1)
    fig, axes = plt.subplots(nrows, cols, figsize=(10, 2.6 * nrows), squeeze=False)
    it = [r["iteration"] for r in records] + ([records[-1]["iteration"] + 1] if records else [])
    for ax, name in zip(axes.flat, names):
        probs = np.array([r["probabilities"][name] for r in records] + [records[-1]["next_probabilities"][name]])
        labels = (categories or {}).get(name) or [str(k) for k in range(probs.shape[1])]
        for k in range(probs.shape[1]):
            ax.plot(it, probs[:, k], label=labels[k])
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.supxlabel("iteration")
    return _save(fig, path)


@hep_style
def plot_validation(validation: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """AIDO figure 4: distributions of E_true, E_reco and the surrogate's E' for the current design."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    data = {k: np.asarray(validation[k], dtype=float) for k in ("target", "reconstructed", "surrogate")}
    lo = float(np.percentile(np.concatenate(list(data.values())), 0.5))
    hi = float(np.percentile(np.concatenate(list(data.values())), 99.5))
    bins = np.linspace(lo, hi, 40)
    for key, label in (("target", "E_true"), ("reconstructed", "E_reco"), ("surrogate", "E' (surrogate)")):
        ax.hist(data[key], bins=bins, histtype="step", lw=1.5, label=label)
    ax.set_xlabel("energy [GeV]")
    ax.set_ylabel("events")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


@hep_style
def plot_parameters(records: Sequence[Record], path: Path, units: Mapping[str, str] | None = None) -> Path:
    """Each continuous parameter of the current design per iteration, in its unit (the last point: the final design)."""
    plt = _pyplot()
    names = list(records[0]["values"]) if records else []
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.6), squeeze=False)
    it = [r["iteration"] for r in records] + ([records[-1]["iteration"] + 1] if records else [])
    for ax, name in zip(axes[0], names):
        ax.plot(it, [r["values"][name] for r in records] + [records[-1]["next_values"][name]], "o-", ms=3)
        unit = (units or {}).get(name, "")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{name} [{unit}]" if unit else name)
    fig.tight_layout()
    return _save(fig, path)


@hep_style
def plot_stack(records: Sequence[Record], path: Path, categories: Mapping[str, Sequence[str]] | None = None) -> Path:
    """The start and the final detector side by side: each layer drawn to scale along the beam, labelled with
    its material (most probable) and thickness."""
    plt = _pyplot()
    layers = _layers(records[0]) if records else []
    fig, ax = plt.subplots(figsize=(10, 2.8))
    designs = [("start", records[0]["values"], records[0]["probabilities"]),
               ("final", records[-1]["next_values"], records[-1]["next_probabilities"])]
    for row, (label, values, probabilities) in enumerate(designs):
        left = 0.0
        for thickness, material, color, _ in _stack(layers, values, probabilities, categories):
            ax.barh(row, thickness, left=left, height=0.6, color=color, edgecolor="black", linewidth=0.6)
            text = f"{material}\n{thickness:.3g} cm" if thickness > 12 else (material if thickness > 5 else "")
            if text:
                import matplotlib.colors

                r, g, b = matplotlib.colors.to_rgb(color)
                ink = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
                ax.text(left + thickness / 2, row, text, ha="center", va="center", fontsize=8, color=ink)
            left += thickness
    ax.set_yticks([0, 1], [d[0] for d in designs])
    ax.set_ylim(-0.5, 1.5)
    ax.invert_yaxis()
    ax.set_xlabel("depth along the beam [cm] (beam from the left)")
    fig.tight_layout()
    return _save(fig, path)
