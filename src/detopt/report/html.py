"""A self-contained HTML report of a run: a summary table and the figures, embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from detopt.atomic import write_text_atomic
from detopt.design.describe import parameter_text
from detopt.errors import ConfigError
from detopt.report.figures import (
    _layers,
    plot_composition,
    plot_constraints,
    plot_losses,
    plot_parameters,
    plot_probabilities,
    plot_stack,
    plot_validation,
)

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
    import errno

    try:
        return _write_report(run_dir, output)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR):
            raise
        where = exc.filename or output or Path(run_dir) / "report"
        raise ConfigError("--output", f"cannot write the report to {where}: {exc.strerror or exc}; give -o PATH "
                          "for a writable place") from None


def _write_report(run_dir: Path, output: Path | None) -> Path:
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
    from detopt.optimize.run_directory import verify_iteration

    verify_iteration(run_dir, len(records) - 1)
    if output is not None and Path(output).suffix.lower() not in (".html", ".htm"):
        output = Path(output) / "index.html"  # a folder: the report and its figures go inside
    out_html = output if output is not None else run_dir / "report" / "index.html"
    folder = out_html.parent
    if output is None and folder.is_symlink():
        raise ConfigError("run", f"{folder} is a symbolic link; the report is written only inside the run (remove the link, "
                          "or give -o for another place)")
    if out_html.is_dir():
        raise ConfigError("--output", f"{out_html} is a folder; give the path of the HTML file")
    if folder.exists() and not folder.is_dir():
        raise ConfigError("--output", f"{folder} is a file, not a folder")
    start_space = DesignSpace.load(iteration_dir(run_dir, 0) / "design.json")
    categories = {p.name: list(p.categories) for p in start_space.discrete}
    limits = {name: float(m["limit"]) for name, m in info["monitors"].items() if m.get("limit") is not None} or _limits(config)
    units = {p.name: p.unit for p in start_space.continuous}
    figures: list[tuple[str, Path]] = [
        *([("Start and final detector, to scale", plot_stack(records, folder / "stack.png", categories))] if _layers(records[0]) else []),
        ("Detector composition per iteration (AIDO fig. 5)", plot_composition(records, folder / "composition.png", categories))
        if _layers(records[0]) else
        ("Design parameters per iteration", plot_parameters(records, folder / "parameters.png", units)),
        ("Training-set losses per iteration: reconstruction L on the simulated designs and surrogate L' "
         "(AIDO fig. 6; the fresh-simulation verdict above is the measure of the design)", plot_losses(records, folder / "losses.png")),
        ("Constraints against their limits (AIDO fig. 8)", plot_constraints(records, folder / "constraints.png", limits,
                                                                    {n: str(m.get("unit") or "") for n, m in info["monitors"].items()})),
        ("Category probabilities per iteration (AIDO fig. 9)", plot_probabilities(records, folder / "probabilities.png", categories)),
    ]
    for label, i in (("first", 0), ("last", len(records) - 1)):
        vfile = iteration_dir(run_dir, i) / "validation.json"
        if vfile.is_file():
            figures.append((
                f"Surrogate validation, {label} iteration ({i}) (AIDO fig. 4)",
                plot_validation(json.loads(vfile.read_text()), folder / f"validation_{label}.png", f"iteration {i}"),
            ))
    first, last = records[0], records[-1]
    final_space = DesignSpace.load(iteration_dir(run_dir, len(records) - 1) / "design_next.json")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>detopt run report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}td,th{padding:2px 10px;text-align:left}"
        "img{max-width:100%}.warn{color:#a40}</style></head><body>",
        f"<h1>detopt run: {html.escape(str(run_dir))}</h1>",
        *_answer(run_dir, records, start_space, final_space, info),
    ]
    for title, png in figures:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    write_text_atomic(out_html, "\n".join(parts))
    return out_html


def _faults(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "faults.jsonl"
    if not path.is_file():
        return []
    faults = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if isinstance(entry, dict):
            faults.append(entry)
    return faults


def _answer(run_dir: Path, records: list[dict[str, Any]], start: Any, final: Any, info: dict[str, Any]) -> list[str]:
    """The top of the report: the designs side by side, the verdict, the budget, the constraints, the faults."""
    e = html.escape
    out = ["<h2>Result</h2><table><tr><th>parameter</th><th>start design</th><th>final design</th></tr>"]
    for name in final.names:
        out.append(f"<tr><td>{e(name)}</td><td>{e(parameter_text(start, name))}</td><td>{e(parameter_text(final, name))}</td></tr>")
    out.append("</table>")
    evaluation = run_dir / "evaluation.json"
    verdict = None
    if evaluation.is_file():
        try:
            verdict = json.loads(evaluation.read_text(encoding="utf-8"))
            s, f = verdict["start"], verdict["final"]
            out.append(
                f"<p><b>Verdict by fresh simulation</b> (<code>detopt evaluate</code>, {int(f['n_test']):,} test events per "
                f"design): reconstruction loss {s['loss']:.4g} &plusmn; {s['loss_error']:.2g} (start) &rarr; "
                f"{f['loss']:.4g} &plusmn; {f['loss_error']:.2g} (final), {100 * verdict['relative_improvement']:.1f}% better.</p>"
            )
            if int(verdict.get("iterations", len(records))) != len(records):
                out.append(f"<p class='warn'>The verdict was made after {int(verdict['iterations'])} iterations, the run now has "
                           f"{len(records)}: rerun <code>detopt evaluate</code>.</p>")
        except (OSError, ValueError, KeyError, TypeError):
            out.append("<p class='warn'>evaluation.json is damaged: rerun <code>detopt evaluate</code>.</p>")
            verdict = None
    if verdict is None and not evaluation.is_file():
        out.append(f"<p>No fresh-simulation verdict yet: <code>detopt evaluate {e(str(run_dir))}</code> judges the start "
                   "and final designs on new events and adds it here.</p>")
    events = sum(int(r["n_events"]) for r in records)
    wall = sum(r["timings"]["iteration_s"] for r in records)
    out.append(f"<p>{len(records)} iterations, {events:,} simulated events, {wall:.0f} s of wall time.</p>")
    rows = []
    for name, value in records[-1]["next_monitors"].items():
        spec = info["monitors"].get(name) or {}
        unit = f" {spec['unit']}" if spec.get("unit") else ""
        limit = spec.get("limit")
        state = "" if limit is None else (" (within)" if value <= limit else " <b class='warn'>(over the limit)</b>")
        rows.append(f"<tr><td>{e(name)}</td><td>{records[0]['monitors'][name]:.6g}{e(unit)}</td>"
                    f"<td>{value:.6g}{e(unit)}</td><td>{'' if limit is None else f'{limit:.6g}{e(unit)}'}{state}</td></tr>")
    if rows:
        out.append("<h3>Constraints</h3><table><tr><th>quantity</th><th>start</th><th>final</th><th>limit</th></tr>")
        out += rows + ["</table>"]
        if "built_cost_eur" in records[-1]["next_monitors"]:
            out.append("<p>cost_eur is the expected cost (each material priced with its probability, AIDO eq. 8); "
                       "built_cost_eur that of the detector that would be built (the most probable materials).</p>")
    faults = _faults(run_dir)
    if faults:
        dropped = sum(1 for f in faults if f.get("action") == "dropped")
        out.append(f"<h3>Faults</h3><p>{len(faults)} failed simulation attempt(s), {dropped} design(s) dropped "
                   "(<code>faults.jsonl</code>):</p><ul>")
        for f in faults[:20]:
            out.append(f"<li>iteration {f.get('iteration')}, design {f.get('design')}, attempt {f.get('attempt')} "
                       f"({e(str(f.get('action')))}): {e(str(f.get('error'))[:300])}</li>")
        if len(faults) > 20:
            out.append(f"<li>... and {len(faults) - 20} more</li>")
        out.append("</ul>")
    else:
        out.append("<p>No simulation failed.</p>")
    return out
