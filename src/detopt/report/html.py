"""A self-contained HTML report of a run: a summary table and the figures, embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from detopt.atomic import write_text_atomic
from detopt.errors import ConfigError
from detopt.report.figures import plot_composition, plot_constraints, plot_losses, plot_probabilities, plot_validation

__all__ = ["write_report"]


def _limits(config: dict[str, Any]) -> dict[str, float]:
    penalties = config.get("penalties") or {}
    limits = {}
    if penalties.get("length"):
        limits["length_cm"] = float(penalties["length"]["limit_cm"])
    if penalties.get("cost"):
        limits["cost_eur"] = float(penalties["cost"]["limit_eur"])
    return limits


def write_report(run_dir: Path, output: Path | None = None) -> Path:
    """Write ``report/*.png`` and ``report/index.html`` (or ``output``) for the run in ``run_dir``."""
    from detopt.optimize.loop import iteration_dir, load_records

    from detopt.design import DesignSpace
    from detopt.optimize.run_directory import read_run_info

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError("run", f"{run_dir} is not a folder")
    info = read_run_info(run_dir)
    config_path = run_dir / "config.yaml"
    config: dict[str, Any] = {}
    if config_path.is_file():
        from detopt.optimize.config import load_config

        try:  # a damaged config.yaml: an error naming the file, before any figure is drawn
            load_config(config_path)
        except ConfigError as exc:
            raise ConfigError(exc.field if exc.field == str(config_path) else f"{config_path}: {exc.field}", exc.message) from None
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    records = load_records(run_dir)
    if not records:
        raise ConfigError("run", f"{run_dir} has no complete iteration yet")
    out_html = output if output is not None else run_dir / "report" / "index.html"
    folder = out_html.parent
    start_space = DesignSpace.load(iteration_dir(run_dir, 0) / "design.json")
    categories = {p.name: list(p.categories) for p in start_space.discrete}
    limits = {name: float(m["limit"]) for name, m in info["monitors"].items() if m.get("limit") is not None} or _limits(config)
    figures: list[tuple[str, Path]] = [
        ("Detector composition per iteration (AIDO fig. 5)", plot_composition(records, folder / "composition.png", categories)),
        ("Reconstruction loss L and surrogate loss L' (AIDO fig. 6)", plot_losses(records, folder / "losses.png")),
        ("Constraints against their limits (AIDO fig. 8)", plot_constraints(records, folder / "constraints.png", limits)),
        ("Material probabilities (AIDO fig. 9)", plot_probabilities(records, folder / "probabilities.png", categories)),
    ]
    for label, i in (("first", 0), ("last", len(records) - 1)):
        vfile = iteration_dir(run_dir, i) / "validation.json"
        if vfile.is_file():
            figures.append((
                f"Surrogate validation, {label} iteration ({i}) (AIDO fig. 4)",
                plot_validation(json.loads(vfile.read_text()), folder / f"validation_{label}.png", f"iteration {i}"),
            ))
    first, last = records[0], records[-1]
    rows = [
        ("iterations complete", str(len(records))),
        ("reconstruction loss L, first -> last", f"{first['reconstruction_loss']:.4g} -> {last['reconstruction_loss']:.4g}"),
        ("surrogate loss L', first -> last", f"{first['surrogate_loss_start']:.4g} -> {last['surrogate_loss_start']:.4g}"),
        *((name, f"{first['monitors'][name]:.6g} -> {last['next_monitors'][name]:.6g}") for name in last["next_monitors"]),
        ("total wall time of the iterations [s]", f"{sum(r['timings']['iteration_s'] for r in records):.1f}"),
    ]
    design_rows = [(k, f"{first['values'][k]:.3f}", f"{v:.3f}") for k, v in last["next_values"].items()]
    design_rows += [
        (k, ", ".join(f"{p:.2f}" for p in first["probabilities"][k]), ", ".join(f"{p:.2f}" for p in v))
        for k, v in last["next_probabilities"].items()
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>detopt run report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}td,th{padding:2px 10px;text-align:left}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>detopt run: {html.escape(str(run_dir))}</h1><table>",
        *(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows),
        "</table><h2>Design: start and now</h2><table><tr><th>parameter</th><th>start</th><th>now</th></tr>",
        *(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>" for a, b, c in design_rows),
        "</table>",
    ]
    for title, png in figures:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    write_text_atomic(out_html, "\n".join(parts))
    return out_html
