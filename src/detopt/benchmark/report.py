"""Figures and a markdown table of a benchmark result document (:func:`detopt.benchmark.harness.run_suite`).

One figure per suite: per problem, the median over seeds (line) and the quartile band of the
best-so-far true objective's relative gap to the best known, (f - f_best) / |f_best|, against
simulated events. The table gives per problem and method: the final recommended design's true
objective (median [quartiles]), its gap relative to detopt's (a ratio; < 1: better than
detopt), the events to get within 5% of the best known objective (median; "-" when fewer than
half the seeds got there), how many seeds beat their start design, and the median wall time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from detopt.atomic import atomic_path, write_text_atomic

__all__ = ["markdown_table", "plot_curves", "write_report"]

#: Colours per method (SRSO variants in blues and greens, black-box methods in warm colours).
COLOURS = {
    "detopt": "#1f4e9c", "detopt-ddpm": "#4f9fd8", "detopt-cold": "#2c9c5a", "detopt-reuse": "#8c6bb1",
    "detopt-carry": "#17becf", "detopt-local": "#9edae5", "detopt-fixed-width": "#6baed6", "detopt-no-commit": "#74c476",
    "aido": "#e377c2", "cma-es": "#d62728", "tpe": "#ff7f0e", "gp": "#8c564b", "random": "#7f7f7f",
}
GAP_FLOOR = 1e-4


def _gap(value: float, best: float) -> float:
    return max((value - best) / abs(best), GAP_FLOOR) if best else max(value - best, GAP_FLOOR)


def plot_curves(document: dict[str, Any], path: Path) -> Path:
    """The recommended design's relative gap against events, median and quartile band over seeds, one panel per problem."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    problems = list(document["problems"])
    n = len(problems)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6 * cols, 6.4), 3.6 * rows + 0.4), squeeze=False)
    for ax, name in zip(axes.flat, problems, strict=False):
        best = document["problems"][name]["best_known"]
        runs = [r for r in document["runs"] if r["problem"] == name]
        for method in dict.fromkeys(r["method"] for r in runs):
            mine = [r for r in runs if r["method"] == method]
            events = np.asarray(mine[0]["events"], dtype=float)
            gaps = np.array([[_gap(v, best) for v in r["recommended"]] for r in mine])
            colour = COLOURS.get(method)
            style = "-" if method in ("detopt", "aido", "cma-es", "tpe", "gp", "random") else "--"
            ax.plot(events, np.median(gaps, axis=0), style, color=colour, label=method, lw=1.6)
            ax.fill_between(events, np.percentile(gaps, 25, axis=0), np.percentile(gaps, 75, axis=0),
                            color=colour, alpha=0.15, lw=0)
        ax.axhline(document["settings"]["tolerance"], color="k", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("simulated events")
        ax.set_ylabel("(f - f_best) / |f_best| of the recommendation")
        ax.grid(alpha=0.3, which="both", lw=0.4)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    axes.flat[0].legend(list(handles.values()), list(handles), fontsize=7, ncol=2)
    seeds = len(document["settings"]["seeds"])
    fig.suptitle(f"{document['suite']} suite: median and quartiles over {seeds} seeds\n"
                 "of the recommended design's true objective (dotted: within 5% of the best known)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def markdown_table(document: dict[str, Any]) -> str:
    """The result table (markdown), one row per problem and method."""
    lines = [
        "| problem | method | final true objective, median [q25, q75] | gap to f_best | gap ratio vs detopt | best so far, median | events to 5% (seeds) | beats start | wall s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, per_method in document["summary"].items():
        best = document["problems"][name]["best_known"]
        ref = per_method.get("detopt")
        ref_gap = None if ref is None else ref["final"]["median"] - best
        for method, s in per_method.items():
            final = s["final"]
            gap = final["median"] - best
            ratio = "-" if not ref_gap or ref_gap <= 0 else f"{gap / ref_gap:.2f}"
            events = s["events_to_5pct_median"]
            reach = f"{events:,.0f}" if isinstance(events, (int, float)) and math.isfinite(events) else "-"
            lines.append(
                f"| {name} | {method} | {_fmt(final['median'])} [{_fmt(final['q25'])}, {_fmt(final['q75'])}] | "
                f"{100 * gap / abs(best):.1f}% | {ratio} | {_fmt(s['best_so_far']['median'])} | "
                f"{reach} ({s['reached_5pct']}/{s['seeds']}) | {s['beats_start']}/{s['seeds']} | {s['wall_s_median']:.1f} |"
            )
    return "\n".join(lines)


def problems_table(document: dict[str, Any]) -> str:
    """Problem descriptions, best known and start objective (markdown)."""
    lines = ["| problem | description | best known f_best | start design |", "|---|---|---:|---:|"]
    for name, info in document["problems"].items():
        lines.append(
            f"| {name} | {info['description']} | {_fmt(info['best_known'])} ({info['best_known_source']}) | "
            f"{_fmt(info['start_true'])} |"
        )
    return "\n".join(lines)


def write_report(document: dict[str, Any], out_dir: Path, name: str | None = None) -> dict[str, Path]:
    """Write ``<name>.png`` and ``<name>.md`` (default name ``optbench_<suite>``) into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"optbench_{document['suite']}"
    figure = plot_curves(document, out_dir / f"{name}.png")
    s = document["settings"]
    text = "\n".join([
        f"### {document['suite']} suite",
        "",
        f"Budget {s['budget_events']:,} simulated events per run; black-box evaluation = {s['events_per_evaluation']} "
        f"events; SRSO iteration = {s['srso']['designs_per_iteration']} designs x {s['srso']['events_per_design']} "
        f"events; seeds {s['seeds']}; wall time {document['wall_s'] / 60:.1f} min.",
        "",
        *([] if document.get("complete", True) else [
            f"**Partial result**: the suite was stopped after {len(document['runs'])} runs; the table shows the "
            "methods and seeds that finished (for the calorimeter, the best known objective is the best measured so far).",
            "",
        ]),
        problems_table(document),
        "",
        markdown_table(document),
        "",
        f"![{document['suite']}]({figure.name})",
        "",
    ])
    report = out_dir / f"{name}.md"
    write_text_atomic(report, text)
    return {"figure": figure, "report": report}
