"""The ``detopt optimize``, ``detopt status`` and ``detopt report`` commands as plain functions.

``detopt.cli.main`` wraps them (typer options -> arguments); each returns the exit code and
prints one line per iteration. ``ConfigError`` / ``DataError`` propagate to the CLI, which
prints them as one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["evaluate_command", "optimize_command", "report_command", "status_command"]

Echo = Callable[[str], None]


def _echo(line: str) -> None:
    print(line, flush=True)


def _progress_printer(echo: Echo) -> Callable[[str, int, int], None]:
    """A one-line progress bar on a terminal (carriage return), nothing when output is redirected."""
    interactive = sys.stderr.isatty()

    def progress(stage: str, done: int, total: int) -> None:
        if not interactive:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r  {stage} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\r" + " " * (width + 40) + "\r")
        sys.stderr.flush()

    return progress


def optimize_command(
    config: str | Path,
    run_dir: str | Path | None = None,
    iterations: int | None = None,
    workers: int | None = None,
    echo: Echo = _echo,
    device: str | None = None,
) -> int:
    """``detopt optimize CONFIG [--run-dir] [--iterations] [--workers] [--device]``: run or resume a study."""
    from detopt.errors import ConfigError
    from detopt.optimize.run import optimize_run, prepare_run

    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise ConfigError("--device", f"must be auto, cpu or cuda, got {device!r}")
    prepared = prepare_run(config, run_dir, iterations, workers, device=device)
    ex = prepared.config.execution
    echo(
        f"run directory {prepared.run_dir} ({prepared.iterations} iterations, seed {prepared.config.seed}); "
        f"simulations on {ex.backend}, training on {prepared.settings.device}"
    )
    records = optimize_run(prepared, log=echo, progress=_progress_printer(echo))
    if records:
        last = records[-1]
        echo(f"done: {len(records)} iterations; final design: " + _design_line(last, prepared.problem.space))
    return 0


def _design_line(record: dict[str, Any], space: Any = None) -> str:
    """The design of a record as a physicist reads it: values with units, the chosen category with its probability."""
    parts = []
    for name, value in record["next_values"].items():
        unit = getattr(space[name], "unit", "") if space is not None and name in space else ""
        parts.append(f"{name}={value:.3g}{' ' + unit if unit else ''}")
    for name, probabilities in record["next_probabilities"].items():
        k = max(range(len(probabilities)), key=probabilities.__getitem__)
        if space is not None and name in space:
            parts.append(f"{name}={space[name].categories[k]} (P={probabilities[k]:.2f})")
        else:
            parts.append(f"{name}=category {k} (P={probabilities[k]:.2f})")
    return ", ".join(parts)


def status_command(run: str | Path, echo: Echo = _echo) -> int:
    """``detopt status RUN``: completed iterations, current design, latest losses and constraints."""
    from detopt.errors import ConfigError
    from detopt.optimize.loop import load_records

    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise ConfigError("run", f"{run} is not a detopt run directory (no config.yaml)")
    records = load_records(run)
    if not records:
        echo(f"{run}: no complete iteration yet")
        return 0
    last = records[-1]
    echo(f"{run}: {len(records)} complete iteration(s)")
    echo(f"  reconstruction loss L (current design): {last['reconstruction_loss']:.4f}  (first: {records[0]['reconstruction_loss']:.4f})")
    echo(f"  surrogate loss L': {last['surrogate_loss_start']:.4f} -> {last['surrogate_loss_end']:.4f}")
    events = sum(int(r["n_events"]) for r in records)
    echo(f"  phase: {last['phase']}; sampling width next: {last['next_width']:.3g} x sigma; simulated events: {events:,}")
    for name, value in last["next_monitors"].items():
        echo(f"  {name}: {value:.6g}")
    from detopt.design import DesignSpace
    from detopt.optimize.loop import iteration_dir

    space = DesignSpace.load(iteration_dir(run, len(records) - 1) / "design_next.json")
    echo("  design: " + _design_line(last, space))
    return 0


def report_command(run: str | Path, output: str | Path | None = None, echo: Echo = _echo) -> int:
    """``detopt report RUN``: figures (PNG) and one self-contained HTML report in ``RUN/report/``."""
    from detopt.report import write_report

    path = write_report(Path(run), None if output is None else Path(output))
    echo(f"report written to {path}")
    return 0



def evaluate_command(run: str | Path, n_events: int = 8000, echo: Echo = _echo) -> int:
    """``detopt evaluate RUN``: the start and the current design judged by fresh simulation.

    Each design gets ``n_events`` new events (a seed the run never used) and a freshly trained
    reconstruction; its eq.-10 loss on held-out events is compared, and the result is written
    to ``RUN/evaluation.json``.
    """
    import json

    from detopt.atomic import write_text_atomic
    from detopt.design import DesignSpace
    from detopt.errors import ConfigError
    from detopt.optimize.config import load_config
    from detopt.optimize.evaluate import fresh_reconstruction_loss
    from detopt.optimize.loop import completed_iterations, iteration_dir
    from detopt.optimize.run import build_problem

    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise ConfigError("run", f"{run} is not a detopt run directory (no config.yaml)")
    if isinstance(n_events, bool) or not 100 <= n_events <= 10_000_000:  # held in memory together
        raise ConfigError("--events", f"must be a whole number from 100 to 10,000,000, got {n_events!r}")
    done = completed_iterations(run)
    if done == 0:
        raise ConfigError("run", f"{run} has no complete iteration to evaluate")
    config_path = run / "config.yaml"
    try:
        config, base = load_config(config_path)
    except ConfigError as exc:  # name the run's file, not only the field inside it
        raise ConfigError(exc.field if exc.field == str(config_path) else f"{config_path}: {exc.field}", exc.message) from None
    problem = build_problem(config, base)
    start = DesignSpace.load(iteration_dir(run, 0) / "design.json")
    final = DesignSpace.load(iteration_dir(run, done - 1) / "design_next.json")
    result: dict[str, Any] = {"iterations": done, "events_per_design": n_events}
    for name, space in (("start", start), ("final", final)):
        design = space.current_design()
        result[name] = {"design": design, **fresh_reconstruction_loss(problem, design, n_events=n_events)}
        r = result[name]
        echo(f"{name:5s} design: L = {r['loss']:.4f} +- {r['loss_error']:.4f} (fresh simulation, {r['n_test']} test events)")
    for name, monitor in problem.monitors.items():
        import torch

        value = float(monitor.function(torch.as_tensor(final.current_encoding(), dtype=torch.float64)))
        result["final"][name] = value
        echo(f"final {name}: {value:.6g} (limit {monitor.limit:g} {monitor.unit})")
    gain = 1.0 - result["final"]["loss"] / result["start"]["loss"]
    result["relative_improvement"] = gain
    echo(f"improvement of the reconstruction loss: {100 * gain:.1f}%")
    write_text_atomic(run / "evaluation.json", json.dumps(result, indent=2) + "\n")
    return 0
