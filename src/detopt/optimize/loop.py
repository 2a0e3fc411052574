"""The SRSO loop (AIDO sections 3-5): sample and simulate, reconstruct, train the surrogate, optimize, update the width.

One iteration, centred on the current design theta_c with sampling covariance K, in five stages
(one function each):

1. :func:`sample_and_simulate`: draw N designs around theta_c (AIDO 4.1; the first is theta_c
   itself, the second the previous centre when the width adapts), or spread over the whole box
   in the global first phase; simulate each with its own seed on the executor (failed designs
   are dropped and logged in ``faults.jsonl``);
2. :func:`reconstruct`: train the reconstruction on all events (warm start) and measure every
   design's objective (mean per-event loss plus penalties) on its fresh events;
3. :func:`train_surrogate`: the conditional-diffusion surrogate of T_reco given (design, context, T_true);
4. :func:`optimize_design`: minimize L_opt = L' + penalties + boundary penalty (eq. 2, 3) with Adam
   in normalized coordinates until the trust-region test (eq. 4) fails; after the global phase the
   new centre is the best design simulated;
5. :func:`next_sampling`: the covariance of the next iteration, eq. 5 in units of the adaptive
   width (success and failure counters, :mod:`detopt.optimize.width`), or as published
   (``covariance="aido"``: raw units, fixed sigma).

In the last ``commit_iterations`` iterations every discrete parameter is fixed to its most
probable category and only the continuous values move, so that the design returned is the one
that would be built. Every random draw derives from ``(seed, iteration)`` through
``numpy.random.SeedSequence``, and each iteration starts from what the previous one wrote to
disk, so a run resumed after iteration k gives the same designs as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detopt.atomic import write_text_atomic
from detopt.design import DesignSpace
from detopt.errors import ConfigError, DataError
from detopt.execution import Executor, SerialExecutor
from detopt.optimize.discrete import committed, moved_towards
from detopt.optimize.global_phase import space_filling_designs
from detopt.optimize.optimizer import (
    DesignOptimizer,
    OptimizationResult,
    OptimizationStatus,
)
from detopt.optimize.penalties import (
    boundary_penalty_for,
    optimization_objective,
    weighted_sum,
)
from detopt.optimize.problem import Events, Problem
from detopt.optimize.run_directory import (
    DONE_FILE,
    FAULTS_FILE,
    ITERATIONS_DIR,
    RECORD_FORMAT,
    RUN_FILE,
    WRITE_ERRNOS,
    RunDirectory,
    file_checksums,
    run_info,
    run_lock,
    verify_iteration,
)
from detopt.optimize.trust_region import (
    TRUST_REGION_B,
    covariance_in_width_units,
    mahalanobis,
    updated_covariance,
)
from detopt.optimize.width import WidthRule, WidthState, updated_width

__all__ = [
    "IterationRecord",
    "LoopSettings",
    "SimulationTask",
    "completed_iterations",
    "iteration_dir",
    "load_records",
    "run_loop",
]

__all__ += ["DONE_FILE", "FAULTS_FILE", "ITERATIONS_DIR", "RECORD_FORMAT", "WRITE_ERRNOS"]

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]
Design = dict[str, float | str]


@dataclass(frozen=True)
class LoopSettings:
    """Numbers of the SRSO loop (paper values in the comments; all in the run configuration)."""

    designs_per_iteration: int = 20  # AIDO 6.2
    min_designs: int = 2  # designs that must simulate successfully for an iteration to go on (execution.min_designs)
    events_per_design: int = 400  # AIDO 6.2
    seed: int = 0
    lr: float = 0.01  # AIDO 6.2, lr_O (in units of sigma with covariance "adaptive", of the parameter with "aido")
    lr_discrete: float | None = None
    max_steps: int = 500
    trust_region_b: float = TRUST_REGION_B  # AIDO eq. 4
    boundary_weight: float = 1.0  # AIDO eq. 2 (L_boundaries enters with weight 1)
    optimizer_events: int = 1000  # events on which L' is evaluated during the optimization
    reuse_iterations: int = 0  # earlier iterations whose events inside the trust region train the surrogate
    # "adaptive": normalized coordinates, eq. 5 in width units, adaptive width; "aido": eq. 5 in raw units, fixed sigma
    covariance: str = "adaptive"
    adam: str = "fresh"  # "fresh": new Adam moments every iteration; "carry": moments live on (the paper)
    width: WidthRule = field(default_factory=WidthRule)
    global_designs: int = 0  # designs of the global first phase (iteration 0), 0: none
    max_probability_change: float | None = 0.2  # trust region of the category probabilities per iteration
    sampling_floor: float = 0.05  # every category is drawn with at least this probability
    commit_iterations: int = 2  # last iterations with the categories fixed to the most probable
    common_random_numbers: bool = True  # every design of an iteration simulated with the same seed
    origin: str = "observed"  # the step starts from the best design by its fresh objective ("observed") or by the surrogate's
    surrogate_hidden: tuple[int, ...] = (200, 100)  # AIDO Table 1
    surrogate_train_steps: int = 100
    surrogate_ddim_steps: int = 10
    # "ddim" (surrogate_ddim_steps, eta=0) or "ddpm" (the full stochastic chain, its step noise fixed per
    # iteration so that L' stays a deterministic function of the design during the descent)
    surrogate_sampler: str = "ddim"
    surrogate_lr: float = 1e-3  # AIDO 6.2, lr_S
    surrogate_epochs: int = 60
    surrogate_batch_size: int = 256
    surrogate_patience: int | None = 10
    surrogate_warm_start: bool = True
    # "v" (Salimans & Ho 2022) instead of the paper's epsilon: with few DDIM steps an epsilon model's
    # x0 estimate amplifies its errors by 1/sqrt(alpha_bar) and gives E' tails far beyond E_reco.
    surrogate_prediction: str = "v"
    surrogate_residual: str = "mean_scale"  # detopt.surrogate.normalization: diffuse the residual of a linear model
    validation_events: int = 2000
    device: str = "cpu"  # torch device the driver trains the surrogate on ("cpu", "cuda"; detopt optimize --device)

    def __post_init__(self) -> None:
        m = self.min_designs
        if isinstance(m, bool) or not isinstance(m, int) or not 2 <= m <= self.designs_per_iteration:
            raise ConfigError(
                "execution.min_designs",
                f"must be a whole number from 2 to simulation.designs_per_iteration = {self.designs_per_iteration}, "
                f"got {m!r}",
            )
        if self.origin not in ("observed", "surrogate"):
            raise ConfigError("optimizer.origin", f"must be 'observed' or 'surrogate', got {self.origin!r}")
        if self.covariance not in ("adaptive", "aido"):
            raise ConfigError("optimizer.covariance", f"must be 'adaptive' or 'aido', got {self.covariance!r}")
        if self.adam not in ("fresh", "carry"):
            raise ConfigError("optimizer.adam", f"must be 'fresh' or 'carry', got {self.adam!r}")
        g = self.global_designs
        if isinstance(g, bool) or not isinstance(g, int) or g < 0 or g == 1:
            raise ConfigError("optimizer.global_designs", f"must be 0 (no global phase) or a whole number >= 2, got {g!r}")
        if self.commit_iterations < 0:
            raise ConfigError("optimizer.discrete.commit_iterations", f"must be >= 0, got {self.commit_iterations}")
        if not 0 <= self.sampling_floor < 0.5:
            raise ConfigError("optimizer.discrete.sampling_floor", f"must be in [0, 0.5), got {self.sampling_floor}")
        if self.surrogate_ddim_steps > self.surrogate_train_steps:
            raise ConfigError(
                "surrogate.ddim_steps",
                f"must be <= surrogate.train_steps = {self.surrogate_train_steps}, got {self.surrogate_ddim_steps}",
            )

    @property
    def adaptive(self) -> bool:
        return self.covariance == "adaptive"

    def phase(self, iteration: int, iterations: int) -> str:
        """``global`` (the space-filling first iteration), ``commit`` (categories fixed) or ``local``."""
        if iteration == 0 and self.global_designs:
            return "global"
        first_commit = max(iterations - self.commit_iterations, 2 if self.global_designs else 1)
        if self.commit_iterations and iteration >= first_commit:
            return "commit"
        return "local"


@dataclass
class IterationRecord:
    """What one iteration did (``record.json`` of its folder)."""

    iteration: int
    design: dict[str, float | str]
    values: dict[str, float]
    probabilities: dict[str, list[float]]
    next_values: dict[str, float]
    next_probabilities: dict[str, list[float]]
    reconstruction_loss: float  # L of the current design (design 0), AIDO figure 6
    surrogate_loss_start: float  # L' at the current design
    surrogate_loss_end: float  # L' at the new design
    design_losses: list[float]
    n_designs: int
    n_failed: int
    n_events: int
    n_reused_events: int
    steps: int
    status: str
    mahalanobis: float
    objective: list[float]
    monitors: dict[str, float]
    next_monitors: dict[str, float]
    reconstruction_fit: dict[str, Any]
    surrogate_fit: dict[str, Any]
    timings: dict[str, float]
    format: str = RECORD_FORMAT
    n_retries: int = 0  # simulation attempts that failed and were retried (each also in faults.jsonl)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # designs that failed every attempt
    phase: str = "local"  # "global", "local" or "commit"
    width: float = 1.0  # sampling width of this iteration, in units of each parameter's sigma
    next_width: float = 1.0
    design_objectives: list[float] = field(default_factory=list)  # mean per-event loss + penalties of every design
    improved: bool | None = None  # did the last step lower the fresh objective (design 0 against design 1)?
    origin_design: int = 0  # the design this iteration's step started from (the one with the lowest fresh objective)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SimulationTask:
    """One design to simulate: picklable, run by :func:`_simulate_task` on a worker."""

    simulate: Any
    design: dict[str, float | str]
    n_events: int
    seed: int


def _simulate_task(task: SimulationTask) -> Events:
    """One design's events; NaN or infinite values fail the attempt (retried, then the design is dropped)."""
    events = task.simulate(task.design, task.n_events, task.seed)
    for name in ("features", "context", "target"):
        values = np.asarray(getattr(events, name))
        if values.size and not np.all(np.isfinite(values)):
            raise DataError(f"the simulation returned {int(np.sum(~np.isfinite(values)))} NaN or infinite {name} value(s)")
    return events


# ---------------------------------------------------------------------------- seeds
def _seed_sequence(seed: int, iteration: int, purpose: int, *more: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=(iteration, purpose, *more))


def _int_seed(seed: int, iteration: int, purpose: int, *more: int) -> int:
    return int(_seed_sequence(seed, iteration, purpose, *more).generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


_SAMPLING, _SIMULATION, _RECONSTRUCTION, _SURROGATE, _OPTIMIZER, _VALIDATION, _SCORING = range(7)


# ---------------------------------------------------------------------------- run directory (compatibility names)
def iteration_dir(run_dir: Path, iteration: int) -> Path:
    return RunDirectory(Path(run_dir)).iteration(iteration)


def completed_iterations(run_dir: str | Path) -> int:
    """Number of consecutive complete iterations (those with ``done.json``) from 0."""
    return RunDirectory(Path(run_dir)).completed()


def load_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ``record.json`` of every complete iteration, in order."""
    return RunDirectory(Path(run_dir)).records()


def _write_events(path: Path, events: Events, encoding: np.ndarray, design_id: np.ndarray, names: tuple[str, ...]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from detopt.atomic import atomic_path

    columns: dict[str, Any] = {"design_id": pa.array(design_id.astype(np.int64))}
    for prefix, array in (("feature", events.features), ("context", events.context), ("target", events.target)):
        for j in range(array.shape[1]):
            columns[f"{prefix}_{j}"] = pa.array(array[:, j].astype(np.float64))
    for j, name in enumerate(names):
        columns[f"design:{name}"] = pa.array(encoding[:, j].astype(np.float64))
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(columns), tmp)


def _read_events(path: Path, names: tuple[str, ...]) -> tuple[Events, np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    cols = table.column_names

    def block(prefix: str) -> np.ndarray:
        keys = sorted((c for c in cols if c.startswith(prefix + "_")), key=lambda c: int(c.rsplit("_", 1)[1]))
        return np.stack([table.column(k).to_numpy() for k in keys], axis=1) if keys else np.zeros((table.num_rows, 0))

    events = Events(block("feature"), block("context"), block("target"))
    encoding = np.stack([table.column(f"design:{n}").to_numpy() for n in names], axis=1)
    return events, encoding, table.column("design_id").to_numpy()


# ---------------------------------------------------------------------------- surrogate
def _new_surrogate(settings: LoopSettings, design_dim: int, context_dim: int, n_targets: int, loss_fn: Any) -> Any:
    from detopt.surrogate.loss_surrogate import PerEventLossSurrogate
    from detopt.surrogate.model import ConditionalDiffusion
    from detopt.surrogate.schedule import NoiseSchedule

    model = ConditionalDiffusion.mlp(
        design_dim + context_dim + n_targets, n_targets, hidden=settings.surrogate_hidden,
        schedule=NoiseSchedule(n_train_steps=settings.surrogate_train_steps),
        prediction=settings.surrogate_prediction,  # type: ignore[arg-type]
        residual=settings.surrogate_residual,  # type: ignore[arg-type]
    )
    return PerEventLossSurrogate(model, design_dim, context_dim, loss_fn)


def _train_config(settings: LoopSettings, seed: int) -> Any:
    from detopt.surrogate.training import TrainConfig

    return TrainConfig(
        lr=settings.surrogate_lr, epochs=settings.surrogate_epochs, batch_size=settings.surrogate_batch_size,
        patience=settings.surrogate_patience, device=settings.device, seed=seed,
    )


# ---------------------------------------------------------------------------- state between iterations
@dataclass
class LoopState:
    """Where an iteration starts: the centre, the sampling covariance and width, and the step that led here."""

    space: DesignSpace
    covariance: np.ndarray
    width: WidthState
    previous_phase: str | None = None  # phase of the previous iteration (None at the start)
    previous_status: str | None = None  # how the previous optimization stopped
    previous_origin: DesignSpace | None = None  # where the last step started: simulated again to judge the step


def _sigma(space: DesignSpace) -> np.ndarray:
    return np.array([p.sigma for p in space.optimizable_continuous], dtype=np.float64)


def _centre(space: DesignSpace) -> np.ndarray:
    return np.array([p.value for p in space.optimizable_continuous], dtype=np.float64)


def _width_ceiling(space: DesignSpace) -> float:
    """The widest sampling a box allows: w sigma <= half the range of every parameter."""
    ranges = [(p.bounds[1] - p.bounds[0]) / (2.0 * p.sigma) for p in space.optimizable_continuous]
    return min(ranges) if ranges else 1.0


def load_state(problem: Problem, settings: LoopSettings, run: RunDirectory, iteration: int) -> LoopState:
    """The state at the start of ``iteration``: the problem's start, or what iteration - 1 wrote."""
    if iteration == 0:
        space = problem.space
        width = WidthState(settings.width.initial if settings.adaptive else 1.0)
        return LoopState(space, space.covariance() * width.width**2, width)
    previous = run.iteration(iteration - 1)
    space = DesignSpace.load(previous / "design_next.json")
    saved = run.read_json(previous / "covariance_next.json", "covariance")
    width = run.read_json(previous / "covariance_next.json", "width")
    phase, status = run.read_json(previous / "record.json", "phase"), run.read_json(previous / "record.json", "status")
    state = LoopState(space, np.asarray(saved, dtype=np.float64), WidthState(**width), phase, status)
    if settings.adaptive and phase != "global":
        state.previous_origin = DesignSpace.load(previous / "step_origin.json")
    return state


# ---------------------------------------------------------------------------- 1. sample and simulate
@dataclass
class Simulated:
    """The designs of one iteration and the events of those that simulated."""

    designs: list[Design]
    encodings: np.ndarray  # one row per design (one-hot categories)
    events: Events
    design_id: np.ndarray  # per event: its design's index
    n_failed: int
    n_retries: int
    dropped: list[dict[str, Any]]
    seconds: float

    @property
    def design_rows(self) -> np.ndarray:
        return self.encodings[self.design_id]


def sample_designs(settings: LoopSettings, state: LoopState, phase: str, iteration: int) -> list[Design]:
    """Designs of this iteration: the centre first, then draws around it (or over the box in the global phase)."""
    rng = np.random.default_rng(_seed_sequence(settings.seed, iteration, _SAMPLING))
    if phase == "global":
        return space_filling_designs(state.space, settings.global_designs, rng)
    designs = state.space.sample(
        settings.designs_per_iteration, rng, state.covariance, include_current=True,
        sampling_floor=settings.sampling_floor if phase == "local" else 0.0,
    )
    if state.previous_origin is not None and len(designs) > 2:
        designs[1] = state.previous_origin.current_design()
    return designs


def _simulation_seed(settings: LoopSettings, iteration: int, design: int) -> int:
    """The seed of one design's simulation; with common random numbers the same for every design of an iteration,
    so that designs are compared on the same beam particles (differences between designs are far less noisy)."""
    if settings.common_random_numbers:
        return _int_seed(settings.seed, iteration, _SIMULATION)
    return _int_seed(settings.seed, iteration, _SIMULATION, design)


def sample_and_simulate(
    problem: Problem, settings: LoopSettings, state: LoopState, phase: str, iteration: int,
    executor: Executor, run: RunDirectory, progress: Progress | None,
) -> Simulated:
    """Stage 1: draw the designs and simulate them (each with its own seed); failures are logged and dropped."""
    designs = sample_designs(settings, state, phase, iteration)
    tasks = [
        SimulationTask(problem.simulate, dict(d), settings.events_per_design, _simulation_seed(settings, iteration, j))
        for j, d in enumerate(designs)
    ]
    t0 = time.perf_counter()
    outcomes = executor.map(
        _simulate_task, tasks, None if progress is None else (lambda done, total: progress("simulate", done, total))
    )
    seconds = time.perf_counter() - t0
    kept = [o for o in outcomes if o.ok]
    n_retries, dropped = _record_faults(run, iteration, outcomes)
    for o in outcomes:
        if not o.ok:
            message = f"iteration {iteration}: design {o.index} failed after {o.attempts} attempt(s) and is dropped: {o.error}"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
    if len(kept) < settings.min_designs:
        complete = f"iterations 0-{iteration - 1} are complete" if iteration else "no iteration is complete"
        raise DataError(
            f"iteration {iteration}: only {len(kept)} of {len(designs)} designs simulated successfully, fewer than "
            f"execution.min_designs = {settings.min_designs}; the run stops ({complete}; the failures are in "
            f"{run.path / FAULTS_FILE}). Fix the simulation and rerun the same command to resume."
        )
    encodings = state.space.encode(designs)
    events = Events.concatenate([o.value for o in kept])  # type: ignore[misc]
    design_id = np.concatenate([np.full(len(o.value), o.index) for o in kept])  # type: ignore[arg-type]
    return Simulated(designs, encodings, events, design_id, len(outcomes) - len(kept), n_retries, dropped, seconds)


def _record_faults(run: RunDirectory, iteration: int, outcomes: list[Any]) -> tuple[int, list[dict[str, Any]]]:
    """Append every failed attempt of this iteration to ``faults.jsonl``; returns (retries, dropped designs).

    The log is append-only and spans resumed runs: an iteration redone after a crash logs its faults again.
    """
    lines, retries, dropped = [], 0, []
    now = time.time()
    for o in outcomes:
        errors = list(o.errors) or ([o.error] if o.error else [])
        for attempt, error in enumerate(errors, start=1):
            final = not o.ok and attempt == len(errors)
            lines.append({"iteration": iteration, "design": o.index, "attempt": attempt,
                          "action": "dropped" if final else "retried", "error": error, "time": now})
            retries += 0 if final else 1
        if not o.ok:
            dropped.append({"design": o.index, "attempts": o.attempts, "error": o.error})
    run.append_faults(lines)
    return retries, dropped


# ---------------------------------------------------------------------------- 2. reconstruct
@dataclass
class Reconstructed:
    target: np.ndarray  # reconstructed targets, one row per event
    design_losses: list[float]  # mean per-event loss of every design (NaN: not simulated)
    design_objectives: list[float]  # design loss + penalties at the design (one-hot categories)
    design_errors: list[float]  # standard error of each design's mean per-event loss
    fit: dict[str, Any]
    seconds: float


def reconstruct(problem: Problem, settings: LoopSettings, run: RunDirectory, iteration: int, sim: Simulated) -> Reconstructed:
    """Stage 2: train the reconstruction (warm start), reconstruct every event, judge every design on its fresh events."""
    t0 = time.perf_counter()
    reconstruction = problem.reconstruction
    if iteration > 0:
        reconstruction.load(run.iteration(iteration - 1) / "reconstruction")
    rows = sim.design_rows
    fit = reconstruction.fit(rows, sim.events, _int_seed(settings.seed, iteration, _RECONSTRUCTION), warm=iteration > 0)
    target = np.asarray(reconstruction.predict(rows, sim.events), dtype=np.float64)
    reconstruction.save(run.iteration(iteration) / "reconstruction")
    n = len(sim.events)
    per_event = problem.loss_fn(torch.as_tensor(target), torch.as_tensor(sim.events.target)).reshape(n, -1).mean(1)
    per_event_np = per_event.detach().numpy()
    losses, objectives, errors = [], [], []
    for j in range(len(sim.designs)):
        mine = sim.design_id == j
        loss = float(per_event_np[mine].mean()) if np.any(mine) else math.nan
        errors.append(float(per_event_np[mine].std(ddof=1) / math.sqrt(mine.sum())) if mine.sum() > 1 else math.nan)
        with torch.no_grad():
            penalty = float(weighted_sum(problem.penalties, torch.as_tensor(sim.encodings[j], dtype=torch.float64)))
        losses.append(loss)
        objectives.append(loss + penalty)
    return Reconstructed(target, losses, objectives, errors, fit, time.perf_counter() - t0)


def _reused_events(
    settings: LoopSettings, run: RunDirectory, iteration: int, state: LoopState, problem: Problem,
    sim: Simulated, reco: Reconstructed,
) -> tuple[np.ndarray, Events, np.ndarray, int]:
    """This iteration's training data plus earlier events inside the current trust region (``reuse_iterations``)."""
    rows, events, target = sim.design_rows, sim.events, reco.target
    if settings.reuse_iterations <= 0 or iteration == 0:
        return rows, events, target, 0
    space, names = state.space, state.space.encoding_names
    centre = _centre(space)
    cont = [names.index(p.name) for p in space.optimizable_continuous]
    extra_d, extra_e, extra_r, n_reused = [], [], [], 0
    for past in range(max(0, iteration - settings.reuse_iterations), iteration):
        old_events, old_enc, _ = _read_events(run.iteration(past) / "events.parquet", names)
        inside = np.array([mahalanobis(row[cont] - centre, state.covariance) < settings.trust_region_b for row in old_enc])
        if inside.any():
            sel = old_events.select(inside)
            extra_d.append(old_enc[inside])
            extra_e.append(sel)
            extra_r.append(np.asarray(problem.reconstruction.predict(old_enc[inside], sel), dtype=np.float64))
            n_reused += int(inside.sum())
    if not extra_d:
        return rows, events, target, 0
    return (np.concatenate([rows, *extra_d]), Events.concatenate([events, *extra_e]),
            np.concatenate([target, *extra_r]), n_reused)


# ---------------------------------------------------------------------------- 3. surrogate
def train_surrogate(
    problem: Problem, settings: LoopSettings, run: RunDirectory, iteration: int,
    rows: np.ndarray, events: Events, target: np.ndarray,
) -> tuple[Any, dict[str, Any], float]:
    """Stage 3: the conditional-diffusion surrogate of T_reco given (design, context, T_true); warm start if asked."""
    t0 = time.perf_counter()
    design_dim, context_dim, n_targets = rows.shape[1], events.context.shape[1], events.target.shape[1]
    if iteration > 0 and settings.surrogate_warm_start:
        from detopt.surrogate.loss_surrogate import PerEventLossSurrogate

        surrogate = PerEventLossSurrogate.load(run.iteration(iteration - 1) / "surrogate", loss_fn=problem.loss_fn)
        init_from = surrogate
    else:
        surrogate = _new_surrogate(settings, design_dim, context_dim, n_targets, problem.loss_fn)
        init_from = None
    fit = surrogate.fit(
        torch.as_tensor(rows, dtype=torch.float32),
        torch.as_tensor(events.context, dtype=torch.float32),
        torch.as_tensor(events.target, dtype=torch.float32),
        torch.as_tensor(target, dtype=torch.float32),
        _train_config(settings, _int_seed(settings.seed, iteration, _SURROGATE)),
        init_from=init_from,
    )
    surrogate.save(run.iteration(iteration) / "surrogate")
    return surrogate, {k: v for k, v in fit.to_dict().items() if k not in ("train_loss", "val_loss")}, time.perf_counter() - t0


# ---------------------------------------------------------------------------- 4. optimize
@dataclass
class Optimized:
    result: OptimizationResult
    space: DesignSpace  # the new centre
    optimizer: DesignOptimizer
    l_start: float
    l_end: float
    seconds: float


def _design_optimizer(
    settings: LoopSettings, run: RunDirectory, iteration: int, state: LoopState, phase: str, space: DesignSpace
) -> DesignOptimizer:
    """A fresh Adam (default) or the previous iteration's (``adam="carry"``), in units of the sampling width or raw units."""
    scale = _sigma(space) * state.width.width if settings.adaptive else None
    previous = run.iteration(iteration - 1) / "optimizer"
    n_discrete = sum(1 for p in space.discrete if p.optimizable)
    if settings.adam == "carry" and state.previous_phase == phase and phase != "global":
        optimizer = DesignOptimizer.load(previous, space)
        if len(optimizer.logits) == n_discrete:
            optimizer.set_space(space)
            return optimizer
    return DesignOptimizer(
        space, settings.lr, settings.lr_discrete, scale=scale, max_probability_change=settings.max_probability_change
    )


def surrogate_scores(problem: Problem, settings: LoopSettings, iteration: int, surrogate: Any, sim: Simulated) -> list[float]:
    """L' + penalties of every simulated design as the surrogate sees it (pooled over all events of the iteration)."""
    rng = np.random.default_rng(_seed_sequence(settings.seed, iteration, _SCORING))
    events = sim.events
    m = min(settings.optimizer_events, len(events))
    pick = np.sort(rng.choice(len(events), size=m, replace=False))
    context = torch.as_tensor(events.context[pick], dtype=torch.float64)
    truth = torch.as_tensor(events.target[pick], dtype=torch.float64)
    noise = torch.as_tensor(rng.standard_normal((m, events.target.shape[1])), dtype=torch.float32)
    scores = []
    with torch.no_grad():
        for row in sim.encodings:
            theta = torch.as_tensor(row, dtype=torch.float64)
            value = surrogate(theta, context, truth, noise=noise, n_steps=settings.surrogate_ddim_steps)
            scores.append(float(value) + float(weighted_sum(problem.penalties, theta)))
    return scores


def step_origin(settings: LoopSettings, state: LoopState, phase: str, sim: Simulated, reco: Reconstructed,
                scores: list[float] | None = None) -> tuple[DesignSpace, int]:
    """Where this iteration's step starts, and which design that is: the design with the lowest fresh objective.

    Usually the centre (design 0); when the last step made things worse, where that step started
    (design 1); when another design drawn in this iteration did better than both, that design
    (its categories become more probable: P -> (P + onehot) / 2).
    """
    if phase == "global" or not settings.adaptive:  # the published rule steps from the centre
        return state.space, 0
    observed = reco.design_objectives if scores is None else scores
    simulated = np.isfinite(reco.design_objectives)
    objectives = np.where(simulated & np.isfinite(observed), observed, np.inf)
    best = int(np.argmin(objectives))
    if best == 0 or not np.isfinite(objectives[best]):
        return state.space, 0
    if best == 1 and state.previous_origin is not None:
        return state.previous_origin, 1
    return moved_towards(state.space, sim.designs[best]), best


def optimize_design(
    problem: Problem, settings: LoopSettings, run: RunDirectory, iteration: int, state: LoopState, phase: str,
    origin: DesignSpace, surrogate: Any, sim: Simulated, reco: Reconstructed,
) -> Optimized:
    """Stage 4: Adam on L_opt (eq. 2) from ``origin`` inside the trust region (eq. 4); after the global phase, the best design simulated."""
    t0 = time.perf_counter()
    space = origin
    events = sim.events
    n_targets = events.target.shape[1]
    opt_rng = np.random.default_rng(_seed_sequence(settings.seed, iteration, _OPTIMIZER))
    m = min(settings.optimizer_events, len(events))
    pick = np.sort(opt_rng.choice(len(events), size=m, replace=False))
    context = torch.as_tensor(events.context[pick], dtype=torch.float64)
    truth = torch.as_tensor(events.target[pick], dtype=torch.float64)
    noise = torch.as_tensor(opt_rng.standard_normal((m, n_targets)), dtype=torch.float32)
    boundary = boundary_penalty_for(space)
    chain_seed = int(opt_rng.integers(2**31))

    def surrogate_loss(theta: torch.Tensor) -> torch.Tensor:
        if settings.surrogate_sampler == "ddpm":
            chain = torch.Generator().manual_seed(chain_seed)
            return surrogate(theta, context, truth, noise=noise, generator=chain, method="ddpm")
        return surrogate(theta, context, truth, noise=noise, n_steps=settings.surrogate_ddim_steps)

    def objective(theta: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        l_prime = surrogate_loss(theta)
        penalties = weighted_sum(problem.penalties, theta)
        bound = settings.boundary_weight * boundary(theta)
        return optimization_objective(l_prime, penalties, bound), {
            "surrogate": float(l_prime.detach()), "penalties": float(penalties.detach()), "boundary": float(bound.detach())
        }

    optimizer = _design_optimizer(settings, run, iteration, state, phase, space)
    with torch.no_grad():
        l_start = float(surrogate_loss(optimizer.encoding().detach()))
    if phase == "global":
        objectives = np.where(np.isfinite(reco.design_objectives), reco.design_objectives, np.inf)
        best = int(np.argmin(objectives))
        new_space = moved_towards(space, sim.designs[best])
        result = OptimizationResult(OptimizationStatus.BEST_OF_GLOBAL_PHASE, 0)
    else:
        result = optimizer.run(objective, state.covariance, settings.trust_region_b, settings.max_steps)
        new_space = optimizer.updated_space()
    optimizer.set_space(new_space)
    with torch.no_grad():
        l_end = float(surrogate_loss(optimizer.encoding().detach()))
    return Optimized(result, new_space, optimizer, l_start, l_end, time.perf_counter() - t0)


# ---------------------------------------------------------------------------- 5. next sampling region
def step_improved(state: LoopState, reco: Reconstructed) -> bool | None:
    """Did the last step lower the fresh objective? Design 0 (this centre) against design 1 (where the step started)."""
    if state.previous_origin is None or len(reco.design_objectives) < 2:
        return None
    now, before = reco.design_objectives[0], reco.design_objectives[1]
    if not (math.isfinite(now) and math.isfinite(before)):
        return None
    return now < before


def next_sampling(
    settings: LoopSettings, state: LoopState, phase: str, origin: DesignSpace, new_space: DesignSpace, improved: bool | None
) -> tuple[np.ndarray, WidthState]:
    """Stage 5: the next covariance (eq. 5, d = new centre - step origin) and width; ``aido``: eq. 5 in raw units, fixed sigma."""
    sigma = _sigma(state.space)
    theta_new, theta_c = _centre(new_space), _centre(origin)
    if not settings.adaptive:
        return updated_covariance(sigma, theta_new, theta_c), state.width
    if phase == "global":
        width = WidthState(settings.width.initial)
        return np.diag((width.width * sigma) ** 2), width
    width = state.width
    if phase == "commit":  # converge: the final steps refine the design that will be built
        width = WidthState(max(width.width * settings.width.shrink, settings.width.minimum))
    elif improved is not None:
        hit = state.previous_status == OptimizationStatus.LEFT_TRUST_REGION.value
        width = updated_width(width, improved, hit, settings.width, _width_ceiling(state.space))
    return covariance_in_width_units(sigma, width.width, theta_new, theta_c), width


# ---------------------------------------------------------------------------- the loop
def run_loop(
    problem: Problem,
    settings: LoopSettings,
    run_dir: str | Path,
    iterations: int,
    executor: Executor | None = None,
    log: Log | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) the SRSO loop in ``run_dir`` until ``iterations`` iterations are complete.

    Returns the records of all complete iterations. Iterations already complete in
    ``run_dir`` are skipped; a partly written iteration (no ``done.json``) is redone.

    Faults: failed simulation attempts are retried by the executor and every retry and
    dropped design is appended to ``run_dir/faults.jsonl``; with fewer than
    ``settings.min_designs`` successful designs the run stops with a :class:`DataError`.
    A run directory that cannot be written (full disk, permissions) stops the run with a
    :class:`ConfigError` on ``run_dir``; every iteration completed before stays intact
    (files are written atomically and ``done.json`` last), so rerunning resumes.
    """
    run = RunDirectory(Path(run_dir))
    log = log or (lambda _msg: None)
    executor = executor if executor is not None else SerialExecutor()
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("run_dir", f"cannot create {run_dir}: {exc.strerror or exc}") from None
    with run_lock(Path(run_dir)):
        return _run_locked(problem, settings, run, iterations, executor, log, progress)


def _run_locked(
    problem: Problem, settings: LoopSettings, run: RunDirectory, iterations: int, executor: Executor,
    log: Log, progress: Progress | None,
) -> list[dict[str, Any]]:
    start = run.completed()
    if start >= iterations:
        return run.records()
    if start > 0:  # resuming: the files of the last complete iteration are those it wrote (done.json checksums)
        verify_iteration(Path(run.path), start - 1)
    if not (Path(run.path) / RUN_FILE).is_file():  # a run started from Python: status and report read this
        try:
            write_text_atomic(Path(run.path) / RUN_FILE, json.dumps(run_info(settings.seed, "python", problem.monitors), indent=2) + "\n")
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            raise run.write_failure(exc, start) from None
    stage = progress if progress is not None else (lambda _stage, _done, _total: None)
    with executor:
        for iteration in range(start, iterations):
            folder = run.iteration(iteration)
            try:
                if folder.is_symlink():  # never delete through a link: only the link goes
                    folder.unlink()
                elif folder.exists():
                    shutil.rmtree(folder)  # an interrupted iteration: redo it from the previous one's state
                stage("iteration", iteration - start, iterations - start)
                record = _run_iteration(problem, settings, run, iteration, iterations, executor, progress)
            except OSError as exc:
                if exc.errno not in WRITE_ERRNOS:
                    raise
                raise run.write_failure(exc, iteration) from None
            log(_summary(record))
            stage("iteration", iteration + 1 - start, iterations - start)
    return run.records()


def _summary(record: IterationRecord) -> str:
    monitors = "  ".join(f"{k} {v:.4g}" for k, v in record.next_monitors.items())
    return (
        f"iter {record.iteration:4d}  L {record.reconstruction_loss:.4g}  L' {record.surrogate_loss_start:.4g}"
        f"->{record.surrogate_loss_end:.4g}  steps {record.steps:4d} ({record.status})  width {record.width:.3g}"
        f"  {monitors}  {record.timings['iteration_s']:.1f}s"
    )


def _run_iteration(
    problem: Problem,
    settings: LoopSettings,
    run: RunDirectory,
    iteration: int,
    iterations: int,
    executor: Executor,
    progress: Progress | None,
) -> IterationRecord:
    t_start = time.perf_counter()
    folder = run.iteration(iteration)
    state = load_state(problem, settings, run, iteration)  # a damaged previous iteration stops here, nothing written
    folder.mkdir(parents=True, exist_ok=True)
    phase = settings.phase(iteration, iterations)
    if phase == "commit":
        state.space = committed(state.space)
        if state.previous_origin is not None:  # judge the last step with the categories that will be built
            values = {p.name: p.value for p in state.previous_origin.optimizable_continuous}
            state.previous_origin = state.space.with_values(values, clip=True)
    space = state.space
    space.save(folder / "design.json")
    run.write_json(folder / "covariance.json", {
        "names": [p.name for p in space.optimizable_continuous], "covariance": state.covariance, **state.width.to_dict()
    })

    sim = sample_and_simulate(problem, settings, state, phase, iteration, executor, run, progress)
    _write_events(folder / "events.parquet", sim.events, sim.design_rows, sim.design_id, space.encoding_names)
    stage = progress if progress is not None else (lambda _stage, _done, _total: None)
    stage("reconstruct", 0, 1)
    reco = reconstruct(problem, settings, run, iteration, sim)
    rows, events, target, n_reused = _reused_events(settings, run, iteration, state, problem, sim, reco)
    stage("train surrogate", 0, 1)
    surrogate, surrogate_fit, surrogate_s = train_surrogate(problem, settings, run, iteration, rows, events, target)
    stage("optimize design", 0, 1)
    improved = step_improved(state, reco)
    scores = surrogate_scores(problem, settings, iteration, surrogate, sim) if settings.origin == "surrogate" and phase != "global" else None
    origin, origin_design = step_origin(settings, state, phase, sim, reco, scores)
    opt = optimize_design(problem, settings, run, iteration, state, phase, origin, surrogate, sim, reco)
    covariance, width = next_sampling(settings, state, phase, origin, opt.space, improved)
    _write_validation(settings, folder, iteration, surrogate, sim, reco)

    optimizer_dir = folder / "optimizer"
    optimizer_dir.mkdir(exist_ok=True)
    opt.optimizer.save(optimizer_dir)
    opt.space.save(folder / "design_next.json")
    origin.save(folder / "step_origin.json")
    run.write_json(folder / "covariance_next.json", {
        "names": [p.name for p in space.optimizable_continuous], "covariance": covariance, "width": width.to_dict()
    })

    def monitor_values(s: DesignSpace) -> dict[str, float]:
        theta = torch.as_tensor(s.current_encoding(), dtype=torch.float64)
        with torch.no_grad():
            return {name: float(mon.function(theta)) for name, mon in problem.monitors.items()}

    record = IterationRecord(
        iteration=iteration,
        design=space.current_design(),
        values={p.name: p.value for p in space.continuous},
        probabilities={p.name: list(p.probabilities) for p in space.discrete},
        next_values={p.name: p.value for p in opt.space.continuous},
        next_probabilities={p.name: list(p.probabilities) for p in opt.space.discrete},
        reconstruction_loss=reco.design_losses[0],
        surrogate_loss_start=opt.l_start,
        surrogate_loss_end=opt.l_end,
        design_losses=reco.design_losses,
        n_designs=len(sim.designs),
        n_failed=sim.n_failed,
        n_events=len(sim.events),
        n_reused_events=n_reused,
        steps=opt.result.steps,
        status=opt.result.status.value,
        mahalanobis=opt.result.mahalanobis,
        objective=opt.result.objective,
        monitors=monitor_values(space),
        next_monitors=monitor_values(opt.space),
        reconstruction_fit=reco.fit,
        surrogate_fit=surrogate_fit,
        timings={
            "simulation_s": sim.seconds,
            "reconstruction_train_s": reco.seconds,
            "surrogate_train_s": surrogate_s,
            "optimize_s": opt.seconds,
            "iteration_s": time.perf_counter() - t_start,
        },
        n_retries=sim.n_retries,
        dropped=sim.dropped,
        phase=phase,
        width=state.width.width,
        next_width=width.width,
        design_objectives=reco.design_objectives,
        improved=improved,
        origin_design=origin_design,
    )
    run.write_json(folder / "record.json", record.to_dict())
    run.write_json(folder / DONE_FILE, {"iteration": iteration, "format": RECORD_FORMAT, "sha256": file_checksums(folder)})
    return record


def _write_validation(settings: LoopSettings, folder: Path, iteration: int, surrogate: Any, sim: Simulated, reco: Reconstructed) -> None:
    """The surrogate against the reconstruction on the centre's events (AIDO figure 4): ``validation.json``."""
    current = sim.design_id == 0
    if not current.any():
        return
    idx = np.flatnonzero(current)[: settings.validation_events]
    rows, events = sim.design_rows, sim.events
    gen = torch.Generator().manual_seed(_int_seed(settings.seed, iteration, _VALIDATION))
    with torch.no_grad():
        e_prime = surrogate.sample_targets(
            torch.as_tensor(rows[idx], dtype=torch.float32),
            torch.as_tensor(events.context[idx], dtype=torch.float32),
            torch.as_tensor(events.target[idx], dtype=torch.float32),
            generator=gen, n_steps=settings.surrogate_ddim_steps,
        ).numpy()
    RunDirectory.write_json(folder / "validation.json", {
        "target": events.target[idx, 0], "reconstructed": reco.target[idx, 0], "surrogate": e_prime[:, 0],
        "context": events.context[idx],
    })


def check_run_dir(run_dir: str | Path) -> Path:
    """Create ``run_dir`` if needed and make sure it is writable; ConfigError otherwise (before any work)."""
    import tempfile

    path = Path(run_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a new file of a fresh name (O_EXCL): never written through a symlink someone left in the folder
        with tempfile.NamedTemporaryFile(dir=path, prefix=".detopt-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError("run_dir", f"cannot write to {path}: {exc.strerror or exc}") from None
    return path
