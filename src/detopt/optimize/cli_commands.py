"""The ``detopt optimize``, ``detopt status`` and ``detopt report`` commands as plain functions.

``detopt.cli.main`` wraps them (typer options -> arguments); each returns the exit code and
prints one line per iteration. ``ConfigError`` / ``DataError`` propagate to the CLI, which
prints them as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["optimize_command", "report_command", "status_command"]

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
) -> int:
    """``detopt optimize CONFIG [--run-dir] [--iterations] [--workers]``: run or resume a study."""
    from detopt.optimize.run import optimize_run, prepare_run

    prepared = prepare_run(config, run_dir, iterations, workers)
    echo(f"run directory {prepared.run_dir} ({prepared.iterations} iterations, seed {prepared.config.seed})")
    records = optimize_run(prepared, log=echo, progress=_progress_printer(echo))
    if records:
        last = records[-1]
        echo(f"done: {len(records)} iterations; final design: " + _design_line(last))
    return 0


def _design_line(record: dict[str, Any]) -> str:
    values = ", ".join(f"{k}={v:.3g}" for k, v in record["next_values"].items())
    probs = ", ".join(f"{k}={max(p):.2f}" for k, p in record["next_probabilities"].items())
    return f"{values}; max probabilities: {probs}"


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
    for name, value in last["next_monitors"].items():
        echo(f"  {name}: {value:.6g}")
    echo("  design: " + _design_line(last))
    return 0


def report_command(run: str | Path, output: str | Path | None = None, echo: Echo = _echo) -> int:
    """``detopt report RUN``: figures (PNG) and one self-contained HTML report in ``RUN/report/``."""
    from detopt.report import write_report

    path = write_report(Path(run), None if output is None else Path(output))
    echo(f"report written to {path}")
    return 0

