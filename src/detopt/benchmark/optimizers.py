"""One small adapter per optimizer behind a common :class:`BenchmarkOptimizer` protocol.

Every adapter gets the same :class:`Budget` of simulated events and returns a :class:`RunTrace`:
the design it would recommend after each spend of events. Black-box methods (CMA-ES, optuna
TPE, optuna GP, random search) see a design only through ``Budget.evaluate`` -- the same
simulate + reconstruct + loss pipeline the SRSO surrogate trains on, ``events_per_evaluation``
events each -- and recommend the design with the best observed value so far. The SRSO loop
(:func:`detopt.optimize.loop.run_loop`) spends ``designs_per_iteration x events_per_design``
per iteration and recommends its current design (values, most probable categories).

All methods evaluate (or, for SRSO, centre their first iteration on) the problem's start design
first, and every random draw comes from the run's seed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from detopt.benchmark.problems import BenchmarkProblem, Design
from detopt.design import DesignSpace
from detopt.errors import ConfigError

__all__ = [
    "CMAES",
    "SRSO",
    "BenchmarkOptimizer",
    "Budget",
    "BudgetExhausted",
    "OptunaSampler",
    "RandomSearch",
    "RunTrace",
    "TracePoint",
    "make_optimizers",
]


class BudgetExhausted(RuntimeError):
    """Raised by :meth:`Budget.evaluate` when one more evaluation would exceed the budget."""


@dataclass(frozen=True)
class TracePoint:
    """The recommended design after ``events`` simulated events (``observed``: its noisy value, if seen)."""

    events: int
    design: Design
    observed: float | None = None


@dataclass
class RunTrace:
    """What one optimizer did on one problem with one seed."""

    method: str
    problem: str
    seed: int
    budget_events: int
    events_spent: int = 0
    evaluations: int = 0
    first_design: Design = field(default_factory=dict)
    points: list[TracePoint] = field(default_factory=list)
    wall_s: float = 0.0


def evaluation_seed(seed: int, index: int) -> int:
    """Simulation seed of the ``index``-th evaluation of a run: the same for every method (common random numbers)."""
    state = np.random.SeedSequence(entropy=seed, spawn_key=(7, index)).generate_state(1, dtype=np.uint32)[0]
    return int(state & 0x7FFFFFFF)


class Budget:
    """Counts simulated events; evaluates designs for black-box methods and tracks their incumbent."""

    def __init__(self, bench: BenchmarkProblem, total_events: int, events_per_evaluation: int, seed: int, trace: RunTrace) -> None:
        if events_per_evaluation < 1 or total_events < events_per_evaluation:
            raise ConfigError(
                "budget", f"need 1 <= events per evaluation ({events_per_evaluation}) <= budget ({total_events})"
            )
        self.bench, self.total, self.per_evaluation, self.seed, self.trace = (
            bench, total_events, events_per_evaluation, seed, trace,
        )
        self._best: tuple[float, Design] | None = None

    @property
    def remaining(self) -> int:
        return self.total - self.trace.events_spent

    @property
    def can_evaluate(self) -> bool:
        return self.remaining >= self.per_evaluation

    def evaluate(self, design: Mapping[str, float | str]) -> float:
        """The noisy objective of ``design`` on ``events_per_evaluation`` fresh events (counted)."""
        if not self.can_evaluate:
            raise BudgetExhausted(f"{self.remaining} events left, an evaluation needs {self.per_evaluation}")
        design = dict(design)
        value = float(self.bench.observe(design, self.per_evaluation, evaluation_seed(self.seed, self.trace.evaluations)))
        if not math.isfinite(value):
            value = 1e30  # a failed design is as bad as it gets, and still paid for
        trace = self.trace
        if trace.evaluations == 0:
            trace.first_design = design
        trace.evaluations += 1
        trace.events_spent += self.per_evaluation
        if self._best is None or value < self._best[0]:
            self._best = (value, design)
        trace.points.append(TracePoint(trace.events_spent, dict(self._best[1]), self._best[0]))
        return value


class BenchmarkOptimizer(Protocol):
    """``run`` spends at most ``budget_events`` (exactly, when it divides) and returns the trace."""

    name: str

    def run(self, bench: BenchmarkProblem, budget_events: int, seed: int, workdir: Path) -> RunTrace: ...


# ---------------------------------------------------------------------------- vector <-> design
class BoxEncoding:
    """A design as a vector in [0, 1]^n: continuous values scaled by their bounds, then a one-hot
    relaxation of every discrete parameter (the category is the argmax of its block)."""

    def __init__(self, space: DesignSpace) -> None:
        self.space = space
        self.continuous = [p for p in space.continuous]
        self.discrete = [p for p in space.discrete]
        self.size = len(self.continuous) + sum(len(p.categories) for p in self.discrete)

    def start(self) -> np.ndarray:
        """The start design's values; every category block centred (0.5 each), so that the search can change categories."""
        values = [(p.value - p.bounds[0]) / (p.bounds[1] - p.bounds[0]) for p in self.continuous]
        centred = [0.5 for p in self.discrete for _ in p.categories]
        return np.clip(np.array(values + centred, dtype=float), 0.0, 1.0)

    def decode(self, vector: np.ndarray) -> Design:
        v = np.clip(np.asarray(vector, dtype=float), 0.0, 1.0)
        design: Design = {}
        for i, p in enumerate(self.continuous):
            design[p.name] = float(p.bounds[0] + v[i] * (p.bounds[1] - p.bounds[0]))
        start = len(self.continuous)
        for p in self.discrete:
            k = len(p.categories)
            design[p.name] = p.categories[int(np.argmax(v[start:start + k]))]
            start += k
        return {n: design[n] for n in self.space.names}


# ---------------------------------------------------------------------------- black-box methods
@dataclass
class RandomSearch:
    """Uniform designs in the box (categories uniform), after the start design."""

    events_per_evaluation: int
    name: str = "random"

    def run(self, bench: BenchmarkProblem, budget_events: int, seed: int, workdir: Path) -> RunTrace:
        trace = RunTrace(self.name, bench.name, seed, budget_events)
        budget = Budget(bench, budget_events, self.events_per_evaluation, seed, trace)
        rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(11,)))
        encoding = BoxEncoding(bench.space)
        started = time.perf_counter()
        budget.evaluate(bench.space.current_design())
        while budget.can_evaluate:
            budget.evaluate(encoding.decode(rng.uniform(size=encoding.size)))
        trace.wall_s = time.perf_counter() - started
        return trace


@dataclass
class CMAES:
    """CMA-ES (the ``cma`` package) on :class:`BoxEncoding`: box [0, 1], discrete by one-hot relaxation + argmax.

    Evaluates the start design first, then searches from its continuous values with every
    category block centred (so that each draw picks its categories at random until the search
    learns which are better), step size ``sigma0`` (in units of the box); full generations
    while the budget lasts, then a last partial one (its evaluations still count).
    """

    events_per_evaluation: int
    sigma0: float = 0.2
    name: str = "cma-es"

    def run(self, bench: BenchmarkProblem, budget_events: int, seed: int, workdir: Path) -> RunTrace:
        import cma

        trace = RunTrace(self.name, bench.name, seed, budget_events)
        budget = Budget(bench, budget_events, self.events_per_evaluation, seed, trace)
        encoding = BoxEncoding(bench.space)
        started = time.perf_counter()
        x0 = encoding.start()
        budget.evaluate(bench.space.current_design())
        options = {"bounds": [0.0, 1.0], "seed": int(seed) + 1, "verbose": -9, "verb_log": 0, "verb_disp": 0}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            es = cma.CMAEvolutionStrategy(x0.tolist(), self.sigma0, options)
            while budget.can_evaluate:
                n = min(es.popsize, budget.remaining // budget.per_evaluation)
                candidates = es.ask()
                values = [budget.evaluate(encoding.decode(x)) for x in candidates[:n]]
                if n < es.popsize:
                    break
                es.tell(candidates, values)
        trace.wall_s = time.perf_counter() - started
        return trace


@dataclass
class OptunaSampler:
    """optuna with its native float and categorical parameters: ``sampler`` "tpe" or "gp"; the start design is enqueued first."""

    events_per_evaluation: int
    sampler: str = "tpe"
    name: str = "tpe"

    def _sampler(self, seed: int) -> Any:
        import optuna

        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if self.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        raise ConfigError("sampler", f"must be 'tpe' or 'gp', got {self.sampler!r}")

    def run(self, bench: BenchmarkProblem, budget_events: int, seed: int, workdir: Path) -> RunTrace:
        import optuna

        trace = RunTrace(self.name, bench.name, seed, budget_events)
        budget = Budget(bench, budget_events, self.events_per_evaluation, seed, trace)
        space = bench.space
        started = time.perf_counter()
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning of GPSampler and friends
                study = optuna.create_study(sampler=self._sampler(seed), direction="minimize")
                study.enqueue_trial(space.current_design())
                while budget.can_evaluate:
                    trial = study.ask()
                    design: Design = {}
                    for p in space.parameters:
                        if p.name in {q.name for q in space.continuous}:
                            design[p.name] = trial.suggest_float(p.name, p.bounds[0], p.bounds[1])  # type: ignore[union-attr]
                        else:
                            design[p.name] = trial.suggest_categorical(p.name, list(p.categories))  # type: ignore[union-attr]
                    study.tell(trial, budget.evaluate(design))
        finally:
            optuna.logging.set_verbosity(verbosity)
        trace.wall_s = time.perf_counter() - started
        return trace


# ---------------------------------------------------------------------------- SRSO
@dataclass
class SRSO:
    """detopt's SRSO loop with ``settings`` (a :class:`detopt.optimize.loop.LoopSettings`; its seed is replaced).

    The global first phase (``settings.global_designs``) is part of the budget; the remaining
    events are spent in whole iterations. ``raw_units``: ``settings.lr`` is in units of sigma and
    is converted to the parameters' own unit (median sigma), for the published rule (``aido``).
    """

    settings: Any
    name: str = "detopt"
    raw_units: bool = False

    @property
    def events_per_iteration(self) -> int:
        return int(self.settings.designs_per_iteration * self.settings.events_per_design)

    def iterations_for(self, budget_events: int) -> int:
        """Iterations that fit the budget: the global phase (if any), then whole local iterations."""
        first = self.settings.global_designs * self.settings.events_per_design
        if first:
            if budget_events < first + self.events_per_iteration:
                return 0
            return 1 + (budget_events - first) // self.events_per_iteration
        return budget_events // self.events_per_iteration

    def run(self, bench: BenchmarkProblem, budget_events: int, seed: int, workdir: Path) -> RunTrace:
        import torch

        from detopt.optimize.loop import run_loop

        trace = RunTrace(self.name, bench.name, seed, budget_events)
        iterations = self.iterations_for(budget_events)
        if iterations < 1:
            raise ConfigError("budget", f"{budget_events} events is less than one SRSO iteration ({self.events_per_iteration})")
        settings = replace(self.settings, seed=int(seed))
        if self.raw_units:
            sigma = float(np.median([p.sigma for p in bench.space.optimizable_continuous]))
            settings = replace(settings, lr=settings.lr * sigma)
        problem = bench.make_problem()
        run_dir = Path(workdir) / f"{bench.name}-{self.name}-seed{seed}"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        started = time.perf_counter()
        try:
            records = run_loop(problem, settings, run_dir, iterations)
        finally:
            torch.set_num_threads(threads)
        trace.wall_s = time.perf_counter() - started
        trace.first_design = dict(records[0]["design"])
        space = bench.space
        for record in records:
            trace.events_spent += int(record["n_events"])
            trace.evaluations += int(record["n_designs"])
            design: Design = dict(record["next_values"])
            for p in space.discrete:
                probs = record["next_probabilities"].get(p.name)
                design[p.name] = p.categories[int(np.argmax(probs))] if probs is not None else p.most_probable
            trace.points.append(TracePoint(trace.events_spent, {n: design[n] for n in space.names}))
        return trace


# ---------------------------------------------------------------------------- the line-up
#: The published AIDO algorithm: eq. 5 as written (raw units, fixed sigma), Adam's moments carried over,
#: no global phase, categories by their logits alone (no sampling floor, no probability trust region, no commit).
AIDO_RULE: dict[str, Any] = {
    "covariance": "aido", "adam": "carry", "global_designs": 0, "sampling_floor": 0.0,
    "max_probability_change": None, "commit_iterations": 0,
}

#: SRSO variants: name -> changes to the suite's LoopSettings (ablations of the default).
SRSO_VARIANTS: dict[str, dict[str, Any]] = {
    "detopt": {},
    "detopt-ddpm": {"surrogate_sampler": "ddpm"},
    "detopt-cold": {"surrogate_warm_start": False},
    "detopt-reuse": {"reuse_iterations": 3},
    "detopt-carry": {"adam": "carry"},
    "detopt-local": {"global_designs": 0},
    "detopt-fixed-width": {"width": "fixed"},
    "detopt-no-commit": {"commit_iterations": 0},
}
BLACK_BOX = ("aido", "cma-es", "tpe", "gp", "random")
METHODS = (*SRSO_VARIANTS, *BLACK_BOX)
#: The peers detopt is compared with in the headline ratio (every method that is not a detopt variant).
PEERS = BLACK_BOX


def make_optimizers(names: list[str] | tuple[str, ...], srso_settings: Any, events_per_evaluation: int) -> list[BenchmarkOptimizer]:
    """The optimizers of ``names`` (see :data:`METHODS`)."""
    out: list[BenchmarkOptimizer] = []
    for name in names:
        if name in SRSO_VARIANTS:
            changes = dict(SRSO_VARIANTS[name])
            if changes.get("width") == "fixed":
                from detopt.optimize.width import WidthRule

                w = srso_settings.width.initial
                changes["width"] = WidthRule(initial=w, minimum=w, maximum=w)
            if "global_designs" in changes and srso_settings.global_designs:
                # the same budget: the global phase's events become local iterations
                changes["global_designs"] = 0
            out.append(SRSO(replace(srso_settings, **changes), name=name))
        elif name == "aido":
            out.append(SRSO(replace(srso_settings, **AIDO_RULE), name=name, raw_units=True))
        elif name == "cma-es":
            out.append(CMAES(events_per_evaluation))
        elif name in ("tpe", "gp"):
            out.append(OptunaSampler(events_per_evaluation, sampler=name, name=name))
        elif name == "random":
            out.append(RandomSearch(events_per_evaluation))
        else:
            raise ConfigError("methods", f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return out
