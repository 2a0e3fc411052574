"""The SRSO loop (AIDO sections 3-5): simulate, reconstruct, train the surrogate, optimize; with resume.

One iteration, centred on the current design theta_c with sampling covariance K:

1. draw N designs from N(theta_c, K) (the first is theta_c itself), AIDO section 4.1;
2. simulate each with its own seed on the executor (failed designs are dropped with a warning);
3. train the reconstruction on all events together (warm start) and reconstruct the targets;
4. train the conditional-diffusion surrogate of T_reco given (design, context, T_true) (warm start);
5. minimize L_opt = L' + penalties + boundary penalty (eq. 2, 3) with Adam until the trust-region
   test (eq. 4) fails; the new design is the centre of the next iteration;
6. update K (eq. 5) and write everything to ``<run>/iterations/NNNN/``; ``done.json`` last.

Every random draw derives from ``(seed, iteration)`` through ``numpy.random.SeedSequence``,
and each iteration starts from what the previous one wrote to disk, so a run resumed
after iteration k gives the same designs as an uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import math
import os
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
from detopt.optimize.optimizer import DesignOptimizer
from detopt.optimize.penalties import boundary_penalty_for, weighted_sum
from detopt.optimize.problem import Events, Problem
from detopt.optimize.trust_region import TRUST_REGION_B, mahalanobis, updated_covariance

__all__ = [
    "IterationRecord",
    "LoopSettings",
    "SimulationTask",
    "completed_iterations",
    "iteration_dir",
    "load_records",
    "run_loop",
]

ITERATIONS_DIR = "iterations"
DONE_FILE = "done.json"
FAULTS_FILE = "faults.jsonl"
#: errno values that mean "the run directory cannot be written" (full disk, quota, permissions, read-only)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG, errno.ENOTDIR})
RECORD_FORMAT = "detopt.iteration/1"

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LoopSettings:
    """Numbers of the SRSO loop (paper values in the comments; all in the run configuration)."""

    designs_per_iteration: int = 20  # AIDO 6.2
    min_designs: int = 2  # designs that must simulate successfully for an iteration to go on (execution.min_designs)
    events_per_design: int = 400  # AIDO 6.2
    seed: int = 0
    lr: float = 0.01  # AIDO 6.2, lr_O
    lr_discrete: float | None = None
    max_steps: int = 500
    trust_region_b: float = TRUST_REGION_B  # AIDO eq. 4
    boundary_weight: float = 1.0  # AIDO eq. 2 (L_boundaries enters with weight 1)
    optimizer_events: int = 1000  # events on which L' is evaluated during the optimization
    reuse_iterations: int = 0  # earlier iterations whose events inside the trust region train the surrogate
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
    return task.simulate(task.design, task.n_events, task.seed)


# ---------------------------------------------------------------------------- seeds
def _seed_sequence(seed: int, iteration: int, purpose: int, *more: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=(iteration, purpose, *more))


def _int_seed(seed: int, iteration: int, purpose: int, *more: int) -> int:
    return int(_seed_sequence(seed, iteration, purpose, *more).generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


_SAMPLING, _SIMULATION, _RECONSTRUCTION, _SURROGATE, _OPTIMIZER, _VALIDATION = range(6)


# ---------------------------------------------------------------------------- run directory
def iteration_dir(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / ITERATIONS_DIR / f"{iteration:04d}"


def completed_iterations(run_dir: str | Path) -> int:
    """Number of consecutive complete iterations (those with ``done.json``) from 0."""
    k = 0
    while (iteration_dir(Path(run_dir), k) / DONE_FILE).is_file():
        k += 1
    return k


def load_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ``record.json`` of every complete iteration, in order."""
    from detopt.atomic import read_json_document

    from pydantic import TypeAdapter, ValidationError

    run_dir = Path(run_dir)
    schema = TypeAdapter(IterationRecord)
    records = []
    for i in range(completed_iterations(run_dir)):
        path = iteration_dir(run_dir, i) / "record.json"
        record = read_json_document(path, RECORD_FORMAT)  # DataError naming the file if missing or corrupt
        try:
            schema.validate_python(record, strict=False)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raise DataError(f"{path}: field {where!r}: {first['msg']}") from None
        records.append(record)
    return records


def _json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_to_jsonable) + "\n")


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


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
    run_dir = Path(run_dir)
    log = log or (lambda _msg: None)
    executor = executor if executor is not None else SerialExecutor()
    start = completed_iterations(run_dir)
    if start >= iterations:
        return load_records(run_dir)
    with executor:
        for iteration in range(start, iterations):
            folder = iteration_dir(run_dir, iteration)
            try:
                if folder.exists():
                    shutil.rmtree(folder)  # an interrupted iteration: redo it from the previous one's state
                record = _run_iteration(problem, settings, run_dir, iteration, executor, progress)
            except OSError as exc:
                if exc.errno not in WRITE_ERRNOS:
                    raise
                raise _write_failure(exc, run_dir, iteration) from None
            log(_summary(record))
    return load_records(run_dir)


def _write_failure(exc: OSError, run_dir: Path, iteration: int) -> ConfigError:
    """The one-line error of a run directory that cannot be written; it says what is intact and how to resume."""
    where = exc.filename or run_dir
    complete = completed_iterations(run_dir)
    kept = f"iterations 0-{complete - 1} are complete and intact" if complete else "no iteration was complete yet"
    return ConfigError(
        "run_dir",
        f"cannot write {where} ({exc.strerror or exc}) during iteration {iteration}; {kept}; "
        "free space or fix the permissions, then rerun the same command to resume",
    )


def _record_faults(run_dir: Path, iteration: int, outcomes: list[Any]) -> tuple[int, list[dict[str, Any]]]:
    """Append every failed attempt of this iteration to ``faults.jsonl``; returns (retries, dropped designs).

    The log is append-only (one ``write`` per line, so a crash cuts at most the last line) and
    spans resumed runs: an iteration redone after a crash logs its faults again.
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
    if lines:
        fd = os.open(run_dir / FAULTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8"))
        finally:
            os.close(fd)
    return retries, dropped


def _summary(record: IterationRecord) -> str:
    monitors = "  ".join(f"{k} {v:.4g}" for k, v in record.next_monitors.items())
    return (
        f"iter {record.iteration:4d}  L {record.reconstruction_loss:.4f}  L' {record.surrogate_loss_start:.4f}"
        f"->{record.surrogate_loss_end:.4f}  steps {record.steps:4d} ({record.status})  {monitors}"
        f"  {record.timings['iteration_s']:.1f}s"
    )


def _state_at(problem: Problem, settings: LoopSettings, run_dir: Path, iteration: int) -> tuple[DesignSpace, np.ndarray, DesignOptimizer]:
    """Centre design, sampling covariance and design optimizer at the start of ``iteration``."""
    if iteration == 0:
        space = problem.space
        return space, space.covariance(), DesignOptimizer(space, settings.lr, settings.lr_discrete)
    previous = iteration_dir(run_dir, iteration - 1)
    space = DesignSpace.load(previous / "design_next.json")
    covariance = np.asarray(json.loads((previous / "covariance_next.json").read_text())["covariance"], dtype=np.float64)
    optimizer = DesignOptimizer.load(previous / "optimizer", space)
    return space, covariance, optimizer


def _run_iteration(
    problem: Problem,
    settings: LoopSettings,
    run_dir: Path,
    iteration: int,
    executor: Executor,
    progress: Progress | None,
) -> IterationRecord:
    t_start = time.perf_counter()
    seed = settings.seed
    folder = iteration_dir(run_dir, iteration)
    folder.mkdir(parents=True, exist_ok=True)
    space, covariance, optimizer = _state_at(problem, settings, run_dir, iteration)
    space.save(folder / "design.json")
    _json(folder / "covariance.json", {"names": [p.name for p in space.optimizable_continuous], "covariance": covariance})
    names = space.encoding_names

    # 1-2. sample and simulate -------------------------------------------------------------
    rng = np.random.default_rng(_seed_sequence(seed, iteration, _SAMPLING))
    designs = space.sample(settings.designs_per_iteration, rng, covariance, include_current=True)
    tasks = [
        SimulationTask(problem.simulate, dict(d), settings.events_per_design, _int_seed(seed, iteration, _SIMULATION, j))
        for j, d in enumerate(designs)
    ]
    t0 = time.perf_counter()
    outcomes = executor.map(
        _simulate_task, tasks, None if progress is None else (lambda done, total: progress("simulate", done, total))
    )
    simulation_s = time.perf_counter() - t0
    kept = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    n_retries, dropped = _record_faults(run_dir, iteration, outcomes)
    for o in failed:
        message = f"iteration {iteration}: design {o.index} failed after {o.attempts} attempt(s) and is dropped: {o.error}"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    if len(kept) < settings.min_designs:
        complete = f"iterations 0-{iteration - 1} are complete" if iteration else "no iteration is complete"
        raise DataError(
            f"iteration {iteration}: only {len(kept)} of {len(designs)} designs simulated successfully, fewer than "
            f"execution.min_designs = {settings.min_designs}; the run stops ({complete}; the failures are in "
            f"{run_dir / FAULTS_FILE}). Fix the simulation and rerun the same command to resume."
        )
    encodings = space.encode(designs)
    events = Events.concatenate([o.value for o in kept])  # type: ignore[misc]
    design_id = np.concatenate([np.full(len(o.value), o.index) for o in kept])  # type: ignore[arg-type]
    design_rows = encodings[design_id]
    _write_events(folder / "events.parquet", events, design_rows, design_id, names)

    # 3. reconstruction --------------------------------------------------------------------
    t0 = time.perf_counter()
    reconstruction = problem.reconstruction
    if iteration > 0:
        reconstruction.load(iteration_dir(run_dir, iteration - 1) / "reconstruction")
    reco_fit = reconstruction.fit(design_rows, events, _int_seed(seed, iteration, _RECONSTRUCTION), warm=iteration > 0)
    reco_target = np.asarray(reconstruction.predict(design_rows, events), dtype=np.float64)
    reconstruction.save(folder / "reconstruction")
    per_event = problem.loss_fn(torch.as_tensor(reco_target), torch.as_tensor(events.target)).reshape(len(events), -1).mean(1)
    per_event_np = per_event.detach().numpy()
    design_losses = [
        float(per_event_np[design_id == j].mean()) if np.any(design_id == j) else math.nan for j in range(len(designs))
    ]
    reconstruction_s = time.perf_counter() - t0

    # 3b. optional reuse of earlier events inside the current trust region --------------------
    train_design, train_events, train_reco = design_rows, events, reco_target
    n_reused = 0
    if settings.reuse_iterations > 0 and iteration > 0:
        center = np.array([p.value for p in space.optimizable_continuous])
        cont = [space.encoding_names.index(p.name) for p in space.optimizable_continuous]
        extra_d, extra_e, extra_r = [], [], []
        for past in range(max(0, iteration - settings.reuse_iterations), iteration):
            old_events, old_enc, _ = _read_events(iteration_dir(run_dir, past) / "events.parquet", names)
            inside = np.array(
                [mahalanobis(row[cont] - center, covariance) < settings.trust_region_b for row in old_enc]
            )
            if inside.any():
                sel = old_events.select(inside)
                extra_d.append(old_enc[inside])
                extra_e.append(sel)
                extra_r.append(np.asarray(reconstruction.predict(old_enc[inside], sel), dtype=np.float64))
                n_reused += int(inside.sum())
        if extra_d:
            train_design = np.concatenate([design_rows, *extra_d])
            train_events = Events.concatenate([events, *extra_e])
            train_reco = np.concatenate([reco_target, *extra_r])

    # 4. surrogate -------------------------------------------------------------------------
    t0 = time.perf_counter()
    design_dim, context_dim, n_targets = len(names), events.context.shape[1], events.target.shape[1]
    if iteration > 0 and settings.surrogate_warm_start:
        from detopt.surrogate.loss_surrogate import PerEventLossSurrogate

        surrogate = PerEventLossSurrogate.load(iteration_dir(run_dir, iteration - 1) / "surrogate", loss_fn=problem.loss_fn)
        init_from = surrogate
    else:
        surrogate = _new_surrogate(settings, design_dim, context_dim, n_targets, problem.loss_fn)
        init_from = None
    surrogate_fit = surrogate.fit(
        torch.as_tensor(train_design, dtype=torch.float32),
        torch.as_tensor(train_events.context, dtype=torch.float32),
        torch.as_tensor(train_events.target, dtype=torch.float32),
        torch.as_tensor(train_reco, dtype=torch.float32),
        _train_config(settings, _int_seed(seed, iteration, _SURROGATE)),
        init_from=init_from,
    )
    surrogate.save(folder / "surrogate")
    surrogate_s = time.perf_counter() - t0

    # 5. optimize --------------------------------------------------------------------------
    t0 = time.perf_counter()
    opt_rng = np.random.default_rng(_seed_sequence(seed, iteration, _OPTIMIZER))
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
        return l_prime + penalties + bound, {
            "surrogate": float(l_prime.detach()), "penalties": float(penalties.detach()), "boundary": float(bound.detach())
        }

    theta_center = optimizer.encoding().detach()
    with torch.no_grad():
        l_start = float(surrogate_loss(theta_center))
    result = optimizer.run(objective, covariance, settings.trust_region_b, settings.max_steps)
    new_space = optimizer.updated_space()
    optimizer.set_space(new_space)
    theta_new = optimizer.encoding().detach()
    with torch.no_grad():
        l_end = float(surrogate_loss(theta_new))
    optimize_s = time.perf_counter() - t0

    sigma = np.array([p.sigma for p in space.optimizable_continuous])
    new_covariance = updated_covariance(
        sigma,
        np.array([p.value for p in new_space.optimizable_continuous]),
        np.array([p.value for p in space.optimizable_continuous]),
    )

    # validation of the surrogate on the current design's events (AIDO figure 4) --------------
    current = design_id == 0
    if current.any():
        idx = np.flatnonzero(current)[: settings.validation_events]
        gen = torch.Generator().manual_seed(_int_seed(seed, iteration, _VALIDATION))
        with torch.no_grad():
            e_prime = surrogate.sample_targets(
                torch.as_tensor(design_rows[idx], dtype=torch.float32),
                torch.as_tensor(events.context[idx], dtype=torch.float32),
                torch.as_tensor(events.target[idx], dtype=torch.float32),
                generator=gen, n_steps=settings.surrogate_ddim_steps,
            ).numpy()
        _json(
            folder / "validation.json",
            {"target": events.target[idx, 0], "reconstructed": reco_target[idx, 0], "surrogate": e_prime[:, 0],
             "context": events.context[idx]},
        )

    # 6. record ----------------------------------------------------------------------------
    optimizer_dir = folder / "optimizer"
    optimizer_dir.mkdir(exist_ok=True)
    optimizer.save(optimizer_dir)
    new_space.save(folder / "design_next.json")
    _json(folder / "covariance_next.json", {"names": [p.name for p in space.optimizable_continuous], "covariance": new_covariance})

    def monitor_values(theta: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return {name: float(mon.function(theta)) for name, mon in problem.monitors.items()}

    record = IterationRecord(
        iteration=iteration,
        design=space.current_design(),
        values={p.name: p.value for p in space.continuous},
        probabilities={p.name: list(p.probabilities) for p in space.discrete},
        next_values={p.name: p.value for p in new_space.continuous},
        next_probabilities={p.name: list(p.probabilities) for p in new_space.discrete},
        reconstruction_loss=design_losses[0],
        surrogate_loss_start=l_start,
        surrogate_loss_end=l_end,
        design_losses=design_losses,
        n_designs=len(designs),
        n_failed=len(failed),
        n_events=len(events),
        n_reused_events=n_reused,
        steps=result.steps,
        status=result.status.value,
        mahalanobis=result.mahalanobis,
        objective=result.objective,
        monitors=monitor_values(theta_center),
        next_monitors=monitor_values(theta_new),
        reconstruction_fit=reco_fit,
        surrogate_fit={k: v for k, v in surrogate_fit.to_dict().items() if k not in ("train_loss", "val_loss")},
        timings={
            "simulation_s": simulation_s,
            "reconstruction_train_s": reconstruction_s,
            "surrogate_train_s": surrogate_s,
            "optimize_s": optimize_s,
            "iteration_s": time.perf_counter() - t_start,
        },
    )
    record.n_retries, record.dropped = n_retries, dropped
    _json(folder / "record.json", record.to_dict())
    _json(folder / DONE_FILE, {"iteration": iteration, "format": RECORD_FORMAT})
    return record


def check_run_dir(run_dir: str | Path) -> Path:
    """Create ``run_dir`` if needed and make sure it is writable; ConfigError otherwise (before any work)."""
    path = Path(run_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".detopt-write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise ConfigError("run_dir", f"cannot write to {path}: {exc.strerror or exc}") from None
    return path

