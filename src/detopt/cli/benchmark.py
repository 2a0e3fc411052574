"""``detopt benchmark SUITE``: detopt's SRSO loop against black-box optimizers at equal simulation budget.

Thin: parse, call :func:`detopt.benchmark.harness.run_suite`, write ``NAME.json`` (every run and the summary;
``NAME.partial.json`` after each run while it goes), ``NAME.md`` and ``NAME.png`` into ``--out``. torch, optuna and cma are imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["benchmark"]


def benchmark(
    suite: Annotated[str, typer.Argument(help="ci (tiny, seconds), analytic (2/6/12-parameter noisy bowls), calorimeter, or tracker (examples/tracker, a known optimum).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for NAME.json, NAME.md and NAME.png.")] = Path(
        "benchmark"
    ),
    seeds: Annotated[int | None, typer.Option("--seeds", help="Seeds per optimizer (default 5; ci: 2).")] = None,
    budget: Annotated[
        int | None, typer.Option("--budget", help="Simulated events per run (a multiple of one SRSO iteration).")
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option("--methods", help="Comma-separated: detopt, its variants (detopt-ddpm, detopt-cold, detopt-reuse, detopt-carry, detopt-local, detopt-fixed-width, detopt-no-commit), aido (the published rule), cma-es, tpe, gp, random."),
    ] = None,
    problems: Annotated[str | None, typer.Option("--problems", help="Comma-separated analytic problems (default: all).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="calorimeter suite: run configuration (default examples/quick.yaml).")
    ] = None,
    true_events: Annotated[
        int | None, typer.Option("--true-events", help="calorimeter suite: fresh events judging a design (default 6000).")
    ] = None,
    checkpoints: Annotated[
        int | None, typer.Option("--checkpoints", help="Budgets at which the recommended design is judged.")
    ] = None,
    ablations_on: Annotated[
        str | None,
        typer.Option("--ablations-on", help="analytic suite: problems that also run the detopt-* ablations (default mixed6)."),
    ] = None,
    designs_per_iteration: Annotated[
        int | None, typer.Option("--designs-per-iteration", help="SRSO: designs simulated per iteration (suite default).")
    ] = None,
    events_per_design: Annotated[
        int | None, typer.Option("--events-per-design", help="SRSO: events per design (suite default).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Prefix of the output files NAME.json, NAME.md, NAME.png (default optbench_SUITE).")
    ] = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Only redraw NAME.md and NAME.png from an existing NAME.json in --out.")
    ] = False,
) -> None:
    """Run SUITE and write NAME.json (all runs and the summary), NAME.md (tables) and NAME.png into --out."""
    import json

    from detopt.errors import ConfigError

    name = name or f"optbench_{suite}"
    if any(c in name for c in "/\\") or name.startswith("."):  # the files stay inside --out
        raise ConfigError("--name", f"must be a plain name (no '/', not starting with '.'), got {name!r}")
    if report_only:
        from detopt.benchmark.report import write_report

        path = out / f"{name}.json"
        if not path.is_file():
            path = out / f"{name}.partial.json"  # a suite stopped before the end: report the runs it finished
        if not path.is_file():
            raise ConfigError("--report-only", f"no results at {out / name}.json; run the suite first")
        paths = write_report(json.loads(path.read_text(encoding="utf-8")), out, name)
        typer.echo(f"wrote {paths['report']}, {paths['figure']}")
        return

    if true_events is not None and true_events < 10:
        raise ConfigError("--true-events", f"must be >= 10, got {true_events}")
    from detopt.benchmark.harness import run_suite, suite_spec, write_results
    from detopt.benchmark.report import write_report

    spec = suite_spec(
        suite, seeds=seeds, budget_events=budget,
        methods=[m.strip() for m in methods.split(",") if m.strip()] if methods else None,
        problems=[p.strip() for p in problems.split(",") if p.strip()] if problems else None,
        calorimeter_config=config, calorimeter_true_events=true_events, checkpoints=checkpoints,
        ablation_problems=[p.strip() for p in ablations_on.split(",") if p.strip()] if ablations_on else None,
        srso_overrides={"designs_per_iteration": designs_per_iteration, "events_per_design": events_per_design},
    )
    out.mkdir(parents=True, exist_ok=True)
    def save_partial(document: dict[str, object]) -> None:
        write_results(document, out / f"{name}.partial.json")

    from detopt.cli.progress import StageProgress

    try:
        with StageProgress("run", "benchmark runs") as progress:
            document = run_suite(spec, log=lambda line: typer.echo(line), on_run=save_partial, progress=progress)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted: the finished runs are in {out / f'{name}.partial.json'}; "
                   f"add --report-only to report them, or rerun to start the suite again", err=True)
        raise typer.Exit(130) from None
    write_results(document, out / f"{name}.json")
    (out / f"{name}.partial.json").unlink(missing_ok=True)
    paths = write_report(document, out, name)
    typer.echo(f"wrote {out / f'{name}.json'}, {paths['report']}, {paths['figure']}")
