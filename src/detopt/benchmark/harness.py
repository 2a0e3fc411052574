"""Run optimizers on the same problems, seeds and budget of simulated events, and judge them fairly.

For every (problem, method, seed) the harness runs the method with the budget, then measures the
*true objective* of the design it recommended at each checkpoint of the event budget (not
counted in the budget; cached per design, since all methods share the start design). From
that it computes, per run: the recommended design's true objective against events spent, its
best-so-far (running minimum, monotone), the events needed to get within ``tolerance`` (5%)
of the best known objective, and the wall time; and per (problem, method): median and
quartiles over seeds.

A :class:`SuiteSpec` names the problems, methods, SRSO settings, budget and checkpoints; the
suites ``ci``, ``analytic`` and ``calorimeter`` are in :func:`suite_spec`.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from detopt.atomic import write_text_atomic
from detopt.benchmark.optimizers import METHODS, RunTrace, make_optimizers
from detopt.benchmark.problems import BenchmarkProblem, design_key
from detopt.errors import ConfigError

__all__ = ["RESULT_FORMAT", "SuiteSpec", "events_to_target", "run_suite", "suite_spec", "summarize"]

RESULT_FORMAT = "detopt.benchmark/1"
#: "Within 5% of the best known objective": f <= (1 + TOLERANCE) * f_best.
TOLERANCE = 0.05

Log = Callable[[str], None]


@dataclass
class SuiteSpec:
    """Everything one benchmark run needs; recorded in the output."""

    name: str
    problems: list[BenchmarkProblem]
    methods: list[str]
    seeds: list[int]
    srso_settings: Any  # detopt.optimize.loop.LoopSettings
    events_per_evaluation: int
    budget_events: int
    checkpoints: int  # true objective measured at this many evenly spaced budgets (plus the start)
    ablation_problems: list[str] | None = None  # SRSO ablations only on these problems (None: all)
    extra: dict[str, Any] = field(default_factory=dict)

    def methods_for(self, problem: str) -> list[str]:
        ablations = [m for m in self.methods if m.startswith("detopt-")]
        if self.ablation_problems is None or problem in self.ablation_problems:
            return list(self.methods)
        return [m for m in self.methods if m not in ablations]


def _loop_settings(**changes: Any) -> Any:
    from detopt.optimize.loop import LoopSettings

    return LoopSettings(**changes)


#: SRSO settings of the analytic suites (small networks: the problems are small).
ANALYTIC_SRSO = dict(
    designs_per_iteration=8, events_per_design=100, lr=0.1, max_steps=50, global_designs=16, optimizer_events=400,
    surrogate_epochs=10, surrogate_hidden=(64, 64), surrogate_train_steps=50, validation_events=200,
)


def suite_spec(
    suite: str,
    seeds: int | None = None,
    budget_events: int | None = None,
    methods: Sequence[str] | None = None,
    problems: Sequence[str] | None = None,
    calorimeter_config: Path | None = None,
    calorimeter_true_events: int | None = None,
    checkpoints: int | None = None,
    ablation_problems: Sequence[str] | None = None,
    srso_overrides: dict[str, Any] | None = None,
) -> SuiteSpec:
    """The named suite (``ci``, ``analytic``, ``calorimeter``) with optional overrides."""
    from detopt.benchmark.problems import (
        ANALYTIC_PROBLEMS,
        CalorimeterBenchmark,
        analytic_problem,
    )

    if seeds is not None and seeds < 1:
        raise ConfigError("seeds", f"must be >= 1, got {seeds}")
    chosen_methods = list(methods) if methods else list(METHODS)
    for m in chosen_methods:
        if m not in METHODS:
            raise ConfigError("methods", f"unknown method {m!r}; known: {', '.join(METHODS)}")
    if suite in ("analytic", "ci"):
        names = list(problems) if problems else (list(ANALYTIC_PROBLEMS) if suite == "analytic" else ["bowl2"])
        bench = [analytic_problem(n) for n in names]
        srso = _loop_settings(**ANALYTIC_SRSO)
        if suite == "ci":
            srso = replace(srso, designs_per_iteration=4, events_per_design=100, max_steps=20, surrogate_epochs=5, global_designs=8,
                           surrogate_hidden=(32, 32), surrogate_train_steps=20, optimizer_events=200)
        per_iteration = srso.designs_per_iteration * srso.events_per_design
        spec = SuiteSpec(
            name=suite, problems=bench, methods=chosen_methods,
            seeds=list(range(seeds if seeds is not None else (5 if suite == "analytic" else 2))),
            srso_settings=srso, events_per_evaluation=200 if suite == "analytic" else 100,
            budget_events=budget_events if budget_events is not None else per_iteration * (12 if suite == "analytic" else 4),
            checkpoints=checkpoints if checkpoints is not None else (12 if suite == "analytic" else 4),
            ablation_problems=list(ablation_problems) if ablation_problems else (None if suite == "ci" or problems else ["mixed6"]),
        )
    elif suite == "calorimeter":
        from detopt.optimize.run import loop_settings

        root = Path(__file__).resolve().parents[3]
        config = calorimeter_config if calorimeter_config is not None else root / "examples" / "quick.yaml"
        if not Path(config).is_file():
            raise ConfigError("--calorimeter-config", f"file not found: {config}")
        bench_c = CalorimeterBenchmark(
            Path(config), true_events=calorimeter_true_events if calorimeter_true_events is not None else 6000,
        )
        # the reduced CPU form: a global phase of 48 designs x 50 events, then 24 designs x 50 events per SRSO
        # iteration; black-box evaluations of 600 events
        srso = replace(loop_settings(bench_c.config), designs_per_iteration=24, events_per_design=50,
                       global_designs=48, optimizer_events=600, validation_events=200)
        spec = SuiteSpec(
            name=suite, problems=[bench_c], methods=chosen_methods,
            seeds=list(range(seeds if seeds is not None else 5)), srso_settings=srso, events_per_evaluation=600,
            budget_events=budget_events if budget_events is not None else 1200 * 8,
            checkpoints=checkpoints if checkpoints is not None else 2,
        )
    elif suite == "tracker":
        from detopt.benchmark.problems import TrackerBenchmark
        from detopt.optimize.run import loop_settings

        root = Path(__file__).resolve().parents[3]
        bench_t = TrackerBenchmark(root / "examples" / "tracker")
        srso = replace(loop_settings(bench_t.config), validation_events=200)
        per_iteration = srso.designs_per_iteration * srso.events_per_design
        spec = SuiteSpec(
            name=suite, problems=[bench_t], methods=chosen_methods,
            seeds=list(range(seeds if seeds is not None else 5)), srso_settings=srso, events_per_evaluation=500,
            budget_events=budget_events if budget_events is not None else srso.global_designs * srso.events_per_design + 15 * per_iteration,
            checkpoints=checkpoints if checkpoints is not None else 4,
        )
    else:
        raise ConfigError("suite", f"unknown suite {suite!r}; known: ci, analytic, calorimeter, tracker")
    for key, value in (srso_overrides or {}).items():
        if value is not None and (not isinstance(value, int) or value < (2 if key == "designs_per_iteration" else 1)):
            raise ConfigError(f"--{key.replace('_', '-')}", f"must be a whole number >= 2 (designs) / >= 1 (events), got {value!r}")
    changes = {k: v for k, v in (srso_overrides or {}).items() if v is not None}
    if changes:
        spec.srso_settings = replace(spec.srso_settings, **changes)
        spec.extra["srso_overrides"] = changes
    per_iteration = spec.srso_settings.designs_per_iteration * spec.srso_settings.events_per_design
    first = spec.srso_settings.global_designs * spec.srso_settings.events_per_design
    if (spec.budget_events - first) % per_iteration or spec.budget_events < first + per_iteration \
            or spec.budget_events % spec.events_per_evaluation:
        raise ConfigError(
            "budget",
            f"must be the SRSO global phase ({first} events) plus a whole number (>= 1) of SRSO iterations "
            f"({per_iteration} events each), and a multiple of a black-box evaluation "
            f"({spec.events_per_evaluation} events), got {spec.budget_events}",
        )
    if spec.checkpoints < 1:
        raise ConfigError("checkpoints", f"must be >= 1, got {spec.checkpoints}")
    return spec


# ---------------------------------------------------------------------------- measures
def recommendation_at(trace: RunTrace, events: int) -> dict[str, float | str]:
    """The design a method recommends after ``events`` events: its last recommendation made by then (else the start)."""
    design = trace.first_design
    for point in trace.points:
        if point.events > events:
            break
        design = point.design
    return design


def events_to_target(events: Sequence[int], values: Sequence[float], best_known: float, tolerance: float = TOLERANCE) -> float:
    """First number of events at which ``values`` is within ``tolerance`` of ``best_known`` (inf if never)."""
    threshold = best_known + tolerance * abs(best_known)
    for e, v in zip(events, values, strict=True):
        if v <= threshold:
            return float(e)
    return math.inf


def _quartiles(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(a)), "q25": float(np.percentile(a, 25)), "q75": float(np.percentile(a, 75)),
        "min": float(a.min()), "max": float(a.max()),
    }


# ---------------------------------------------------------------------------- run
def run_suite(
    spec: SuiteSpec,
    workdir: Path | None = None,
    log: Log | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every (problem, method, seed) of ``spec``; returns the result document (see :func:`summarize`).

    ``on_run`` is called with the document so far after each run (``complete`` False), to save partial results;
    ``progress("run", done, total)`` after each run and ``progress(what, 0, 1)`` before it.
    """
    import torch

    log = log or (lambda _m: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    problems_out: dict[str, Any] = {}

    def document_now() -> dict[str, Any]:
        document = {
            "format": RESULT_FORMAT,
            "suite": spec.name,
            "complete": False,
            "settings": {
                "methods": spec.methods, "seeds": spec.seeds, "budget_events": spec.budget_events,
                "events_per_evaluation": spec.events_per_evaluation, "checkpoints": spec.checkpoints,
                "ablation_problems": spec.ablation_problems, "tolerance": TOLERANCE,
                "srso": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec.srso_settings).items() if k != "seed"},
                **spec.extra,
            },
            "problems": dict(problems_out),
            "runs": list(runs),
            "wall_s": time.perf_counter() - started,
        }
        document["summary"] = summarize(document)
        return document

    stage = progress or (lambda _what, _done, _total: None)
    total = sum(len(spec.methods_for(b.name)) * len(spec.seeds) for b in spec.problems)
    stage("run", 0, total)
    try:
        with tempfile.TemporaryDirectory(prefix="detopt-bench-") as tmp:
            work = Path(workdir) if workdir is not None else Path(tmp)
            for bench in spec.problems:
                cache: dict[Any, float] = {}

                def true_value(design: dict[str, float | str], bench: BenchmarkProblem = bench, cache: dict[Any, float] = cache) -> float:
                    key = design_key(design)
                    if key not in cache:
                        cache[key] = float(bench.true_objective(design))
                    return cache[key]

                def problem_info(bench: BenchmarkProblem = bench, cache: dict[Any, float] = cache) -> dict[str, Any]:
                    best_known = bench.best_known
                    measured = min([r["best_so_far"][-1] for r in runs if r["problem"] == bench.name] + list(cache.values()))
                    return {
                        "description": bench.description,
                        "best_known": best_known if best_known is not None else measured,
                        "best_known_source": "closed form (exact minimization)" if best_known is not None
                        else "best true objective measured in this benchmark",
                        "start_true": true_value(bench.space.current_design()),
                        "true_objective_evaluations": len(cache),
                    }

                grid = [0] + [int(round(spec.budget_events * (k + 1) / spec.checkpoints)) for k in range(spec.checkpoints)]
                optimizers = make_optimizers(spec.methods_for(bench.name), spec.srso_settings, spec.events_per_evaluation)
                for optimizer in optimizers:
                    for seed in spec.seeds:
                        stage(f"{bench.name} {optimizer.name} seed {seed}", 0, 1)
                        trace = optimizer.run(bench, spec.budget_events, seed, work)
                        t0 = time.perf_counter()
                        recommended = [true_value(recommendation_at(trace, e)) for e in grid]
                        judge_s = time.perf_counter() - t0
                        best = np.minimum.accumulate(recommended).tolist()
                        runs.append({
                            "problem": bench.name, "method": optimizer.name, "seed": seed,
                            "budget_events": spec.budget_events, "events_spent": trace.events_spent,
                            "evaluations": trace.evaluations, "events": grid, "recommended": recommended,
                            "best_so_far": best, "first_design_true": true_value(trace.first_design),
                            "final_design": recommendation_at(trace, spec.budget_events),
                            "wall_s": trace.wall_s, "judge_s": judge_s,
                        })
                        log(f"{bench.name:<12} {optimizer.name:<13} seed {seed}: final {recommended[-1]:.4g}  "
                            f"events {trace.events_spent}  {trace.wall_s:.1f}s")
                        problems_out[bench.name] = problem_info()
                        if on_run is not None:
                            on_run(document_now())
                        stage("run", len(runs), total)
                problems_out[bench.name] = problem_info()
    finally:
        torch.set_num_threads(threads)
    document = document_now()
    document["complete"] = True
    document["summary"] = summarize(document)
    return document


def summarize(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per problem and method: quartiles over seeds of the final true objective, best-so-far, events to 5%, wall time."""
    tolerance = document["settings"]["tolerance"]
    out: dict[str, dict[str, Any]] = {}
    for name, info in document["problems"].items():
        best = info["best_known"]
        per_method: dict[str, Any] = {}
        for method in dict.fromkeys(r["method"] for r in document["runs"] if r["problem"] == name):
            runs = [r for r in document["runs"] if r["problem"] == name and r["method"] == method]
            reach = [events_to_target(r["events"], r["best_so_far"], best, tolerance) for r in runs]
            finite = [e for e in reach if math.isfinite(e)]
            per_method[method] = {
                "final": _quartiles([r["recommended"][-1] for r in runs]),
                "best_so_far": _quartiles([r["best_so_far"][-1] for r in runs]),
                "events_to_5pct_median": float(np.median(reach)) if len(finite) * 2 > len(reach) else math.inf,
                "reached_5pct": len(finite),
                "seeds": len(runs),
                "wall_s_median": float(np.median([r["wall_s"] for r in runs])),
                "beats_start": sum(r["recommended"][-1] < r["first_design_true"] for r in runs),
            }
        out[name] = per_method
    return out


def write_results(document: dict[str, Any], path: Path) -> None:
    """The result document as JSON (atomically; inf as the string "inf")."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return "inf" if value > 0 else "-inf"
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    write_text_atomic(path, json.dumps(clean(document), indent=1) + "\n")
