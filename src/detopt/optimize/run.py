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
    built_cost_for,
    cost_penalty,
    design_tensors,
    expected_cost_for,
    length_penalty,
    length_penalty_for,
    linear_constraint_for,
    total_length_for,
)
from detopt.optimize.problem import (
    CalorimeterSimulation,
    Monitor,
    NetworkReconstruction,
    Problem,
)
from detopt.optimize.run_directory import RUN_FILE, RUN_FORMAT, run_info, run_lock
from detopt.optimize.width import WidthRule

__all__ = ["PreparedRun", "build_problem", "loop_settings", "optimize_run", "prepare_run", "training_device"]

CONFIG_FILE = "config.yaml"


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


def build_problem(config: RunConfig, base_dir: Path | None = None, simulator: str | None = None) -> Problem:
    """The problem of a configuration: design, simulation, reconstruction, loss, penalties and monitors.

    Every entry point is imported here, so a typo stops the run before any work; ``simulator``
    replaces the configured built-in simulator (``detopt evaluate --simulator geant4``).
    """
    space = config.design_space(base_dir)
    path = config.import_path(base_dir)
    simulate, n_features, n_context, n_targets = _simulation(config, base_dir, space, path, simulator)
    loss_fn = _loss(config.loss, path)
    reconstruction = _reconstruction(config, space, path, n_features, n_context, n_targets, loss_fn)
    penalties, monitors = _penalties(config, space, path)
    return Problem(space=space, simulate=simulate, reconstruction=reconstruction, penalties=penalties,
                   loss_fn=loss_fn, monitors=monitors)


def _simulation(
    config: RunConfig, base_dir: Path | None, space: Any, path: tuple[str, ...], simulator: str | None
) -> tuple[Any, int, int, int]:
    """The simulation callable with the number of features, context columns and targets it yields."""
    sim = config.simulation
    kind = simulator or sim.simulator
    if kind in ("fastsim", "geant4"):
        from detopt.simulation import parse_particles

        materials = config.material_table(base_dir)
        if simulator is not None and sim.simulator not in ("fastsim", "geant4"):
            raise ConfigError("--simulator", f"replaces the built-in calorimeter simulator; this run uses {sim.simulator!r}")
        layout = config.model_copy(update={"simulation": sim.model_copy(update={"simulator": kind})}).layout(space, materials)
        try:
            particles = tuple(parse_particles(list(sim.particles)))
        except ConfigError as exc:
            raise ConfigError("simulation.particles", exc.message) from None
        engine = None
        if kind == "geant4":
            from detopt.simulation.geant4 import Geant4Simulator

            data_dir = None if sim.geant4_data_dir is None else Path(sim.geant4_data_dir).expanduser().resolve()
            engine = Geant4Simulator(data_dir=data_dir)
        simulate = CalorimeterSimulation(layout, particles, tuple(sim.energy_range_gev), simulator=engine,
                                         materials=materials or None)
        return simulate, sum(1 for spec in layout.layers if spec.active), len(particles), 1
    from detopt.entry_points import parse_entry_point
    from detopt.simulation.external import ColumnMap, CommandSimulation, PythonSimulation

    columns = None
    if sim.columns is not None:
        columns = ColumnMap(tuple(sim.columns.features), tuple(sim.columns.targets), tuple(sim.columns.context))
    if kind == "command":
        assert sim.command is not None and columns is not None  # the settings' validator checked it
        folder = config.base_path(base_dir, sim.command.working_dir or ".").resolve()
        if not folder.is_dir():
            raise ConfigError("simulation.command.working_dir", f"{folder} is not a folder")
        config_dir = str((base_dir or Path(".")).resolve())
        simulate: Any = CommandSimulation(
            sim.command.argv(), columns, sim.command.format, sim.command.tree, str(folder), config_dir,
            config.execution.timeout_s, tuple(sorted(sim.command.environment.items())),
        )
        _check_program(simulate.argv(Path("design.json"), Path("events"), 0, 1)[0], folder)
        return simulate, len(columns.features), len(columns.context), len(columns.targets)
    function = parse_entry_point(sim.function, "simulation.function", path)
    function.load()
    if columns is None:
        raise ConfigError("simulation.columns", "name the features and targets (a python simulation returning Events "
                          "is used through the Python API, detopt.optimize.run_loop)")
    return PythonSimulation(function, columns), len(columns.features), len(columns.context), len(columns.targets)


def _check_program(program: str, folder: Path) -> None:
    import shutil

    candidate = Path(program) if Path(program).is_absolute() or "/" in program else None
    if candidate is not None:
        candidate = candidate if candidate.is_absolute() else folder / candidate
        if not candidate.is_file():
            raise ConfigError("simulation.command.run", f"program {program!r} not found (looked in {folder})")
    elif shutil.which(program) is None:
        raise ConfigError("simulation.command.run", f"program {program!r} is not on PATH")


def _loss(name: str, path: tuple[str, ...]) -> Any:
    from detopt.reconstruction.loss import BUILTIN_LOSSES

    if name in BUILTIN_LOSSES:
        return BUILTIN_LOSSES[name]
    from detopt.entry_points import parse_entry_point

    return parse_entry_point(name, "loss", path).load()


def _reconstruction(
    config: RunConfig, space: Any, path: tuple[str, ...], n_features: int, n_context: int, n_targets: int, loss_fn: Any
) -> Any:
    from detopt.reconstruction import ReconstructionConfig

    rc = config.reconstruction
    if rc.function is not None:
        import inspect

        from detopt.entry_points import parse_entry_point
        from detopt.optimize.problem import FunctionReconstruction

        obj = parse_entry_point(rc.function, "reconstruction.function", path).load()
        if inspect.isclass(obj):
            try:
                step = obj()
            except Exception as exc:
                raise ConfigError("reconstruction.function", f"{rc.function}() failed: {type(exc).__name__}: {exc}") from None
            missing = [m for m in ("fit", "predict", "save", "load") if not callable(getattr(step, m, None))]
            if missing:
                raise ConfigError("reconstruction.function", f"{rc.function} has no method(s) {', '.join(missing)}")
            return step
        return FunctionReconstruction(obj, space, n_targets)
    if n_targets != 1:
        raise ConfigError("simulation.columns.targets", f"the built-in reconstruction network estimates one target, got {n_targets}; "
                          "give reconstruction.function for several")
    return NetworkReconstruction(
        space.encoding_size, n_features,
        ReconstructionConfig(
            lr=rc.lr, epochs=rc.epochs, batch_size=rc.batch_size, patience=rc.patience,
            device=training_device(config.execution.device),
        ),
        n_context=n_context if rc.use_context else 0,
        loss_fn=None if config.loss == "energy_resolution" else loss_fn,
    )


def _penalties(config: RunConfig, space: Any, path: tuple[str, ...]) -> tuple[list[Any], dict[str, Monitor]]:
    """The weighted penalties of the configuration and the quantities recorded each iteration."""
    from detopt.entry_points import parse_entry_point

    penalties: list[Any] = []
    monitors: dict[str, Monitor] = {}

    def upper_limit(name: str, g: Any, limit: float, weight: float, unit: str) -> None:
        penalties.append((lambda theta: length_penalty(g(theta), limit), weight))  # the eq.-7 form
        monitors[name] = Monitor(g, limit, unit)

    lp, cp = config.penalties.length, config.penalties.cost
    if lp is not None:
        layers = (config.detector or {}).get("layers") or []
        thickness = [f"{layer['name']}_thickness" for layer in layers
                     if isinstance(layer, dict) and f"{layer.get('name')}_thickness" in space]
        names = lp.parameters if lp.parameters is not None else (thickness if config.detector is not None else None)
        penalties.append((length_penalty_for(space, lp.limit_cm, names), lp.weight))
        monitors["length_cm"] = Monitor(total_length_for(space, names), lp.limit_cm, "cm")
    if cp is not None:
        expected, built = expected_cost_for(space, cp.lengths), built_cost_for(space, cp.lengths)
        constrained = expected if cp.quantity == "expected" else built
        penalties.append((lambda theta: cost_penalty(constrained(theta), cp.limit_eur), cp.weight))
        monitors["cost_eur"] = Monitor(expected, cp.limit_eur, "EUR")
        if space.discrete:
            monitors["built_cost_eur"] = Monitor(built, cp.limit_eur, "EUR")
    for i, lc in enumerate(config.penalties.linear):
        g = linear_constraint_for(space, lc.coefficients, f"penalties.linear[{i}].coefficients")
        upper_limit(lc.name, g, lc.limit, lc.weight, lc.unit)
    for i, cc in enumerate(config.penalties.custom):
        field = f"penalties.custom[{i}].function"
        g = _custom_constraint(parse_entry_point(cc.function, field, path).load(), space, field)
        upper_limit(cc.name, g, cc.limit, cc.weight, cc.unit)
    return penalties, monitors


def _custom_constraint(function: Any, space: Any, field: str) -> Any:
    """A user constraint as a function of the design tensor; tried once on the current design."""
    import torch

    def g(theta: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(function(design_tensors(space, theta))).reshape(())

    try:
        value = g(torch.as_tensor(space.current_encoding(), dtype=torch.float64))
    except Exception as exc:
        raise ConfigError(field, f"failed on the start design: {type(exc).__name__}: {exc}") from None
    if not torch.isfinite(value):
        raise ConfigError(field, f"returned {float(value)} on the start design; it must return a finite number")
    return g


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


def _previous_config(path: Path) -> dict[str, Any]:
    """The configuration a run directory was started with; a ConfigError naming the file when it is damaged."""
    previous = None
    if path.is_file() and not path.is_symlink():
        try:
            previous = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            pass
    if not isinstance(previous, dict):
        raise ConfigError("run_dir", f"{path} is damaged (or not a plain file), so this run cannot be checked against "
                          "your configuration: restore it, or use a new run directory")
    return previous


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
    if existing.exists() or existing.is_symlink():
        previous = _previous_config(existing)
        if _comparable(previous) != _comparable(resolved):
            changed = sorted(k for k in set(_comparable(previous)) | set(_comparable(resolved))
                             if previous.get(k) != resolved.get(k))
            raise ConfigError(
                "run_dir",
                f"{path} holds a run with a different configuration (changed: {', '.join(changed)}); "
                "use a new run directory",
            )
    check_run_dir(path)
    with run_lock(path):  # another driver on this run: refused before anything is written
        pass
    try:
        write_text_atomic(path / CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))
        write_text_atomic(path / RUN_FILE, json.dumps(run_info(config.seed, "config", problem.monitors), indent=2) + "\n")
    except OSError as exc:  # a disk that filled up since the check: one clear line, the old files intact
        raise ConfigError("run_dir", f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
    return PreparedRun(config, resolved, problem, settings, path, config.iterations)


def optimize_run(prepared: PreparedRun, log: Log | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run or resume the loop of a prepared run; returns the records of all complete iterations."""
    import torch

    ex = prepared.config.execution
    executor = make_executor(ex.backend, ex.n_workers, ex.address, ex.retries, timeout_s=ex.timeout_s, cluster=ex.cluster,
                             host=ex.local_host)
    threads = torch.get_num_threads()
    if ex.torch_threads is not None:
        torch.set_num_threads(ex.torch_threads)
    try:
        if log is not None and completed_iterations(prepared.run_dir):
            log(f"resuming {prepared.run_dir} after iteration {completed_iterations(prepared.run_dir) - 1}")
        return run_loop(prepared.problem, prepared.settings, prepared.run_dir, prepared.iterations, executor, log, progress)
    finally:
        torch.set_num_threads(threads)
