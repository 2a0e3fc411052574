"""From a run configuration to a running SRSO loop: build the problem, check the run directory, resume.

``prepare_run`` does every check (configuration, design, layout, penalties, run directory)
before any simulation starts; ``optimize_run`` runs or resumes the loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from detopt.atomic import write_text_atomic
from detopt.errors import ConfigError
from detopt.execution import make_executor
from detopt.optimize.config import RunConfig, load_config, validate_config
from detopt.optimize.loop import (
    Log,
    LoopSettings,
    Progress,
    check_run_dir,
    completed_iterations,
    run_loop,
)
from detopt.optimize.penalties import (
    cost_penalty_for,
    expected_cost_for,
    length_penalty_for,
    total_length_for,
)
from detopt.optimize.problem import (
    CalorimeterSimulation,
    Monitor,
    NetworkReconstruction,
    Problem,
)
from detopt.optimize.width import WidthRule

__all__ = ["PreparedRun", "build_problem", "loop_settings", "optimize_run", "prepare_run", "training_device"]

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
RUN_FORMAT = "detopt.run/1"


@dataclass
class PreparedRun:
    config: RunConfig
    resolved: dict[str, Any]
    problem: Problem
    settings: LoopSettings
    run_dir: Path
    iterations: int


def training_device(name: str) -> str:
    """The torch device the driver trains on: ``"auto"`` is ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("execution.device", "'cuda' asked for (--device cuda) but torch sees no CUDA device; use cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError("execution.device", f"must be auto, cpu or cuda, got {name!r}")
    return name


def build_problem(config: RunConfig, base_dir: Path | None = None) -> Problem:
    """The calorimeter problem of a configuration (design, layout, simulator, reconstruction, penalties)."""
    from detopt.reconstruction import ReconstructionConfig

    space = config.design_space(base_dir)
    layout = config.layout(space)
    sim = config.simulation
    from detopt.simulation import parse_particles

    try:
        particles = tuple(parse_particles(list(sim.particles)))
    except ConfigError as exc:
        raise ConfigError("simulation.particles", exc.message) from None
    simulator = None
    if sim.simulator == "geant4":
        from detopt.simulation.geant4 import Geant4Simulator

        data_dir = None if sim.geant4_data_dir is None else Path(sim.geant4_data_dir).expanduser().resolve()
        simulator = Geant4Simulator(data_dir=data_dir)
    simulate = CalorimeterSimulation(layout, particles, tuple(sim.energy_range_gev), simulator=simulator)
    n_features = sum(1 for spec in layout.layers if spec.active)
    rc = config.reconstruction
    reconstruction = NetworkReconstruction(
        space.encoding_size, n_features,
        ReconstructionConfig(
            lr=rc.lr, epochs=rc.epochs, batch_size=rc.batch_size, patience=rc.patience,
            device=training_device(config.execution.device),
        ),
        n_context=len(particles) if rc.use_context else 0,
    )
    penalties, monitors = [], {}
    thickness = [f"{spec.name}_thickness" for spec in layout.layers if f"{spec.name}_thickness" in space]
    if config.penalties.length is not None:
        lp = config.penalties.length
        names = lp.parameters if lp.parameters is not None else thickness
        penalties.append((length_penalty_for(space, lp.limit_cm, names), lp.weight))
        monitors["length_cm"] = Monitor(total_length_for(space, names), lp.limit_cm, "cm")
    if config.penalties.cost is not None:
        cp = config.penalties.cost
        penalties.append((cost_penalty_for(space, cp.limit_eur, cp.lengths), cp.weight))
        monitors["cost_eur"] = Monitor(expected_cost_for(space, cp.lengths), cp.limit_eur, "EUR")
    return Problem(space=space, simulate=simulate, reconstruction=reconstruction, penalties=penalties, monitors=monitors)


def loop_settings(config: RunConfig) -> LoopSettings:
    o, s = config.optimizer, config.surrogate
    return LoopSettings(
        designs_per_iteration=config.simulation.designs_per_iteration,
        device=training_device(config.execution.device),
        min_designs=config.execution.min_designs,
        events_per_design=config.simulation.events_per_design,
        seed=config.seed,
        lr=o.lr,
        lr_discrete=o.lr_discrete,
        max_steps=o.max_steps,
        trust_region_b=o.trust_region_b,
        boundary_weight=o.boundary_weight,
        optimizer_events=o.events,
        reuse_iterations=o.reuse_iterations,
        covariance=o.covariance,
        adam=o.adam,
        width=WidthRule(
            initial=o.width.initial, minimum=o.width.minimum, maximum=o.width.maximum,
            success_tolerance=o.width.success_tolerance, failure_tolerance=o.width.failure_tolerance,
        ),
        global_designs=o.global_designs,
        origin=o.origin,
        common_random_numbers=config.simulation.common_random_numbers,
        max_probability_change=o.discrete.max_change,
        sampling_floor=o.discrete.sampling_floor,
        commit_iterations=o.discrete.commit_iterations,
        surrogate_hidden=tuple(s.hidden),
        surrogate_train_steps=s.train_steps,
        surrogate_ddim_steps=s.ddim_steps,
        surrogate_sampler=s.sampler,
        surrogate_lr=s.lr,
        surrogate_epochs=s.epochs,
        surrogate_batch_size=s.batch_size,
        surrogate_patience=s.patience,
        surrogate_warm_start=s.warm_start,
        surrogate_prediction=s.prediction,
        surrogate_residual=s.residual,
    )


def _comparable(resolved: dict[str, Any]) -> dict[str, Any]:
    """The parts of a resolved configuration that must not change when a run is resumed."""
    return {k: v for k, v in resolved.items() if k not in ("iterations", "execution", "run_dir")}


def prepare_run(
    config_path: str | Path,
    run_dir: str | Path | None = None,
    iterations: int | None = None,
    workers: int | None = None,
    device: str | None = None,
) -> PreparedRun:
    """Validate everything and set up (or reopen) the run directory; raises ConfigError before any work."""
    overrides: dict[str, Any] = {}
    config, base = load_config(config_path)
    if iterations is not None:
        overrides["iterations"] = iterations
    if workers is not None:
        overrides["execution"] = {**config.execution.model_dump(), "n_workers": workers}
    if device is not None:
        overrides["execution"] = {**overrides.get("execution", config.execution.model_dump()), "device": device}
    if overrides:
        config = validate_config({**config.model_dump(mode="json"), **overrides})
    problem = build_problem(config, base)
    floor = config.optimizer.discrete.sampling_floor
    for parameter in problem.space.discrete:
        if parameter.optimizable and floor * len(parameter.categories) >= 1:
            raise ConfigError(
                "optimizer.discrete.sampling_floor",
                f"must be below 1/{len(parameter.categories)} = {1 / len(parameter.categories):.4g} for "
                f"{parameter.name} ({len(parameter.categories)} categories), got {floor}",
            )
    settings = loop_settings(config)
    resolved = config.resolved(base)
    target = run_dir if run_dir is not None else config.run_dir
    if target is None:
        raise ConfigError("run_dir", "give --run-dir or run_dir in the configuration")
    path = Path(target)  # a relative run_dir is relative to the working directory, like --run-dir
    existing = path / CONFIG_FILE
    if existing.is_file():
        previous = yaml.safe_load(existing.read_text(encoding="utf-8"))
        if _comparable(previous) != _comparable(resolved):
            changed = sorted(k for k in set(_comparable(previous)) | set(_comparable(resolved))
                             if previous.get(k) != resolved.get(k))
            raise ConfigError(
                "run_dir",
                f"{path} holds a run with a different configuration (changed: {', '.join(changed)}); "
                "use a new run directory",
            )
    check_run_dir(path)
    try:
        write_text_atomic(path / CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))
        write_text_atomic(path / RUN_FILE, json.dumps({"format": RUN_FORMAT, "seed": config.seed}, indent=2) + "\n")
    except OSError as exc:  # a disk that filled up since the check: one clear line, the old files intact
        raise ConfigError("run_dir", f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
    return PreparedRun(config, resolved, problem, settings, path, config.iterations)


def optimize_run(prepared: PreparedRun, log: Log | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run or resume the loop of a prepared run; returns the records of all complete iterations."""
    import torch

    ex = prepared.config.execution
    executor = make_executor(ex.backend, ex.n_workers, ex.address, ex.retries, timeout_s=ex.timeout_s, cluster=ex.cluster)
    threads = torch.get_num_threads()
    if ex.torch_threads is not None:
        torch.set_num_threads(ex.torch_threads)
    try:
        if log is not None and completed_iterations(prepared.run_dir):
            log(f"resuming {prepared.run_dir} after iteration {completed_iterations(prepared.run_dir) - 1}")
        return run_loop(prepared.problem, prepared.settings, prepared.run_dir, prepared.iterations, executor, log, progress)
    finally:
        torch.set_num_threads(threads)
