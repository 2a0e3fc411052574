"""The ``detopt optimize``, ``detopt status`` and ``detopt report`` commands as plain functions.

``detopt.cli.main`` wraps them (typer options -> arguments); each returns the exit code and
prints one line per iteration. ``ConfigError`` / ``DataError`` propagate to the CLI, which
prints them as one line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["evaluate_command", "optimize_command", "report_command", "status_command"]

Echo = Callable[[str], None]


def _echo(line: str) -> None:
    print(line, flush=True)


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
    from detopt.cli.progress import StageProgress
    from detopt.optimize.loop import completed_iterations

    try:
        with StageProgress("iteration") as progress:
            records = optimize_run(prepared, log=echo, progress=progress)
    except KeyboardInterrupt:
        import logging

        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # workers torn down mid-task: not news
        done = completed_iterations(prepared.run_dir)
        sys.stderr.write(
            f"\ninterrupted: {done} complete iteration(s) are kept in {prepared.run_dir}; "
            f"rerun the same command to resume from there\n"
        )
        return 130
    if records:
        from detopt.design import DesignSpace
        from detopt.optimize.loop import iteration_dir

        final = DesignSpace.load(iteration_dir(prepared.run_dir, len(records) - 1) / "design_next.json")
        echo(f"done: {len(records)} iterations; final design:" + _design_line(final))
    return 0


def _design_line(space: Any) -> str:
    """The design on one line when it is short, one parameter (or calorimeter layer) per line otherwise."""
    from detopt.design.describe import design_lines

    lines = design_lines(space)
    return " " + ", ".join(lines) if len(lines) < 4 else "\n    " + "\n    ".join(lines)


def status_command(run: str | Path, echo: Echo = _echo) -> int:
    """``detopt status RUN``: completed iterations, current design, latest losses and constraints."""
    from detopt.errors import ConfigError
    from detopt.optimize.loop import load_records

    from detopt.optimize.run_directory import read_run_info

    run = Path(run)
    if not run.is_dir():
        raise ConfigError("run", f"{run} is not a folder")
    info = read_run_info(run)
    records = load_records(run)
    if not records:
        echo(f"{run}: no complete iteration yet")
        return 0
    from detopt.optimize.run_directory import verify_iteration

    verify_iteration(run, len(records) - 1)  # the files the summary reads are those the run wrote
    last = records[-1]
    echo(f"{run}: {len(records)} complete iteration(s)")
    echo(f"  reconstruction loss L (current design): {last['reconstruction_loss']:.4g}  (first: {records[0]['reconstruction_loss']:.4g})")
    echo(f"  surrogate loss L': {last['surrogate_loss_start']:.4g} -> {last['surrogate_loss_end']:.4g}")
    events = sum(int(r["n_events"]) for r in records)
    echo(f"  phase: {last['phase']}; sampling width next: {last['next_width']:.3g} x sigma; simulated events: {events:,}")
    for name, value in last["next_monitors"].items():
        spec = info["monitors"].get(name) or {}
        unit = f" {spec['unit']}" if spec.get("unit") else ""
        limit = f" (limit {spec['limit']:.6g}{unit})" if spec.get("limit") is not None else ""
        echo(f"  {name}: {value:.6g}{unit}{limit}")
    from detopt.design import DesignSpace
    from detopt.optimize.loop import iteration_dir

    space = DesignSpace.load(iteration_dir(run, len(records) - 1) / "design_next.json")
    echo("  design:" + _design_line(space))
    return 0


def report_command(run: str | Path, output: str | Path | None = None, echo: Echo = _echo) -> int:
    """``detopt report RUN``: figures (PNG) and one self-contained HTML report in ``RUN/report/``."""
    from detopt.report import write_report

    path = write_report(Path(run), None if output is None else Path(output))
    echo(f"report written to {path}")
    return 0



def evaluate_command(
    run: str | Path, n_events: int = 8000, echo: Echo = _echo, config: str | Path | None = None,
    simulator: str | None = None,
) -> int:
    """``detopt evaluate RUN [--config CONFIG] [--simulator fastsim|geant4]``: the start and the current design
    judged by fresh simulation (``evaluate_run``), written to ``RUN/evaluation.json``.

    The simulation is the run's own (its ``config.yaml``), or that of ``config`` (a run started from
    Python has no configuration); ``simulator`` judges a calorimeter found on the fast simulator with
    Geant4 (or the other way round).
    """
    from detopt.errors import ConfigError
    from detopt.optimize.config import load_config
    from detopt.optimize.evaluate import evaluate_run
    from detopt.optimize.run import build_problem
    from detopt.optimize.run_directory import read_run_info

    run = Path(run)
    if not run.is_dir():
        raise ConfigError("run", f"{run} is not a folder")
    if isinstance(n_events, bool) or not 100 <= n_events <= 10_000_000:  # held in memory together
        raise ConfigError("--events", f"must be a whole number from 100 to 10,000,000, got {n_events!r}")
    if simulator is not None and simulator not in ("fastsim", "geant4"):
        raise ConfigError("--simulator", f"must be fastsim or geant4, got {simulator!r}")
    info = read_run_info(run)
    config_path = Path(config) if config is not None else run / "config.yaml"
    if config is None and not config_path.is_file():
        raise ConfigError(
            "--config",
            f"{run} was started from Python ({info['source']}), so its simulation lives in your code: give --config "
            "with a run configuration of the same problem, or call detopt.optimize.evaluate_run(problem, run_dir)",
        )
    try:
        cfg, base = load_config(config_path)
    except ConfigError as exc:  # name the file, not only the field inside it
        raise ConfigError(exc.field if exc.field == str(config_path) else f"{config_path}: {exc.field}", exc.message) from None
    problem = build_problem(cfg, base, simulator=simulator)
    result = evaluate_run(problem, run, n_events=n_events)
    if simulator is not None:
        result["simulator"] = simulator
    for name in ("start", "final"):
        r = result[name]
        echo(f"{name:5s} design: L = {r['loss']:.4g} +- {r['loss_error']:.2g} (fresh simulation, {r['n_test']} test events)")
    for name, monitor in problem.monitors.items():
        unit = f" {monitor.unit}" if monitor.unit else ""
        limit = f" (limit {monitor.limit:g}{unit})" if monitor.limit is not None else ""
        echo(f"final {name}: {result['final'][name]:.6g}{unit}{limit}")
    echo(f"improvement of the reconstruction loss: {100 * result['relative_improvement']:.1f}%")
    from detopt.design import DesignSpace
    from detopt.optimize.loop import iteration_dir

    echo("final design:" + _design_line(DesignSpace.load(iteration_dir(run, result["iterations"] - 1) / "design_next.json")))
    from detopt.atomic import write_text_atomic

    name = "evaluation.json" if simulator is None else f"evaluation_{simulator}.json"
    write_text_atomic(run / name, json.dumps(result, indent=2) + "\n")
    return 0
