"""The run configuration: one YAML file validated by pydantic (unknown keys are errors).

Everything a run needs: design space (inline or a file path), detector layout, simulator
settings, events per design, designs per iteration, iterations, learning rates, penalties,
trust region, execution, seed, model hyper-parameters and training epochs. Bad input raises
:class:`detopt.errors.ConfigError` naming the field, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from detopt.design import DesignSpace
from detopt.errors import ConfigError
from detopt.execution.clusters import ClusterSettings, check_execution
from detopt.safe_yaml import load_yaml

__all__ = ["RunConfig", "load_config"]



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandSettings(_Strict):
    """An external program run once per design (detopt.simulation.external.CommandSimulation)."""

    #: the command line, a string (split like a shell would, no shell features) or a list of arguments;
    #: placeholders {design_json} {output} {seed} {n_events} {python} {config_dir}
    run: str | list[str]
    #: what the program writes to {output}: a ROOT file with one TTree (read with uproot) or a Parquet table
    format: Literal["root", "parquet"] = "root"
    #: the TTree to read (None: the file's only tree)
    tree: str | None = None
    #: folder the program runs in (relative to the configuration; None: the configuration's folder)
    working_dir: str | None = None
    #: extra environment variables of the program
    environment: dict[str, str] = {}

    @field_validator("run")
    @classmethod
    def _command(cls, value: str | list[str]) -> str | list[str]:
        import shlex

        from detopt.simulation.external import check_template

        try:
            argv = shlex.split(value) if isinstance(value, str) else list(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command line: {exc}") from None
        if not argv or not argv[0].strip():
            raise ValueError("must name a program")
        check_template(argv, "simulation.command.run")
        return value

    def argv(self) -> tuple[str, ...]:
        import shlex

        return tuple(shlex.split(self.run) if isinstance(self.run, str) else self.run)


class ColumnSettings(_Strict):
    """Which columns (ROOT branches, Parquet columns, keys of returned arrays) the loop reads."""

    features: list[str] = Field(min_length=1)  # what the reconstruction sees
    targets: list[str] = Field(min_length=1)  # the truth it reconstructs
    context: list[str] = []  # known per event and given to the reconstruction (e.g. a particle flag)

    @field_validator("features", "targets", "context")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not n.strip() for n in value):
            raise ValueError("column names must not be empty")
        repeated = sorted({n for n in value if value.count(n) > 1})
        if repeated:
            raise ValueError(f"a column may be used once; repeated: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> ColumnSettings:
        names = [*self.features, *self.targets, *self.context]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"a column may be used once (features, targets, context); repeated: {', '.join(repeated)}")
        return self


class SimulationSettings(_Strict):
    #: fastsim / geant4: the built-in calorimeter (needs `detector`); command: an external program;
    #: python: a function package.module:function(design, n_events, seed)
    simulator: Literal["fastsim", "geant4", "command", "python"] = "fastsim"
    #: simulator: command
    command: CommandSettings | None = None
    #: simulator: python, the entry point package.module:function (module found on python_path)
    function: str | None = None
    #: simulator: command or python; which columns are features, targets and context
    columns: ColumnSettings | None = None
    #: Geant4 data folder (official data sets, or one made by `detopt geant4 offline-data DIR`); None: look
    #: in the usual variables (GEANT4_DATA_DIR, G4*DATA).
    geant4_data_dir: str | None = None
    particles: tuple[str, ...] = ("gamma", "pi+")  # built-in simulators: the beam particles (equal shares)
    energy_range_gev: tuple[float, float] = (1.0, 20.0)  # built-in simulators: uniform in [min, max], or one energy
    events_per_design: int = Field(400, ge=1, le=10_000_000)  # one design's events are held in memory together
    designs_per_iteration: int = Field(20, ge=2, le=10_000)  # designs sampled around the current one
    #: simulate every design of an iteration with the same seed (the same beam particles): design-to-design
    #: differences are then far less noisy (common random numbers)
    common_random_numbers: bool = True

    @field_validator("energy_range_gev", mode="before")
    @classmethod
    def _one_energy(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (value, value)  # a single beam energy
        return value

    @field_validator("energy_range_gev")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 100_000:
            raise ValueError(f"must be one energy or (min, max) with 0 < min <= max <= 100000 GeV, got {value}")
        return value

    @model_validator(mode="after")
    def _kind(self) -> SimulationSettings:
        builtin = self.simulator in ("fastsim", "geant4")
        given = {"command": self.command is not None, "function": self.function is not None, "columns": self.columns is not None}
        needed = {"fastsim": (), "geant4": (), "command": ("command", "columns"), "python": ("function",)}[self.simulator]
        for key in needed:
            if not given[key]:
                raise ConfigError(f"simulation.{key}", f"simulator {self.simulator!r} needs simulation.{key}")
        allowed = {"fastsim": (), "geant4": (), "command": ("command", "columns"), "python": ("function", "columns")}[self.simulator]
        for key, present in given.items():
            if present and key not in allowed:
                raise ConfigError(f"simulation.{key}", f"is not used by simulator {self.simulator!r}; remove it")
        if not builtin and self.geant4_data_dir is not None:
            raise ConfigError("simulation.geant4_data_dir", f"is not used by simulator {self.simulator!r}; remove it")
        if self.function is not None:
            from detopt.entry_points import parse_entry_point

            parse_entry_point(self.function, "simulation.function")
        return self


class ExecutionSettings(_Strict):
    #: where simulations run: a Dask LocalCluster, in-process, a batch system through dask-jobqueue, or an
    #: existing scheduler at ``address`` ("dask" is the old name of "address"); docs/clusters.md
    backend: Literal["local", "serial", "slurm", "htcondor", "pbs", "lsf", "address", "dask"] = "local"
    n_workers: int = Field(2, ge=1)  # local backend: worker processes
    address: str | None = None  # address backend: the scheduler, e.g. tcp://host:8786
    retries: int = Field(1, ge=0)  # further attempts of a failed simulation (each recorded in faults.jsonl)
    torch_threads: int | None = Field(1, ge=1)  # CPU threads of the driver's training
    #: seconds one simulation attempt may run before it is interrupted and counted as failed (None: no limit)
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: designs per iteration that must simulate successfully; with fewer the run stops with a message
    min_designs: int = Field(2, ge=2)
    #: the batch jobs of the slurm, htcondor, pbs and lsf backends (detopt.execution.clusters)
    cluster: ClusterSettings | None = None
    #: where the driver trains the networks: "auto" is CUDA when available (``detopt optimize --device``)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: local backend: the address the scheduler, its workers and the dashboard listen on. The default, loopback,
    #: keeps other hosts out (a Dask scheduler runs what it is sent); "0.0.0.0" opens it to the network
    local_host: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9.:\-]+$")

    @model_validator(mode="after")
    def _fits_backend(self) -> ExecutionSettings:
        check_execution(self.backend, self.cluster, self.address)
        return self


class LengthPenaltySettings(_Strict):
    #: AIDO 6.1: d_max = 200 cm
    limit_cm: float = Field(200.0, gt=0)
    #: AIDO eq. 7: factor 10
    weight: float = Field(10.0, ge=0)
    #: continuous parameters whose sum is the length (default: the layer thicknesses)
    parameters: list[str] | None = None


class CostPenaltySettings(_Strict):
    limit_eur: float = Field(200_000.0, gt=0, allow_inf_nan=False)  # AIDO 6.1: cost_max = 200k EUR
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)  # AIDO eq. 9
    #: material parameter -> the thickness it is priced by (default: <layer>_thickness)
    lengths: dict[str, str] | None = None
    #: the cost that is constrained: "expected" (eq. 8, probability-weighted) or "built" (each material
    #: its most probable category: the detector that would be built); both are recorded
    quantity: Literal["expected", "built"] = "expected"


class LinearConstraintSettings(_Strict):
    """sum_i coefficient_i x parameter_i <= limit, penalized as weight x ReLU(sum - limit)^2 (the eq. 7 form)."""

    #: how it is recorded and shown
    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    coefficients: dict[str, float] = Field(min_length=1)  # continuous parameter -> coefficient
    #: upper limit of the sum
    limit: float = Field(allow_inf_nan=False)
    #: penalty weight
    weight: float = Field(10.0, ge=0, allow_inf_nan=False)
    #: unit of the sum, for display
    unit: str = ""

    @field_validator("coefficients")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        import math

        for key, c in value.items():
            if not math.isfinite(c):
                raise ValueError(f"coefficient of {key!r} must be a finite number, got {c}")
        return value


class CustomConstraintSettings(_Strict):
    """function(design) <= limit, penalized as weight x ReLU(value - limit)^2 (the eq. 7 form).

    ``function`` is an entry point package.module:function taking a mapping of parameter name ->
    torch tensor (continuous: the value in its unit; discrete: the category probabilities) and
    returning a differentiable 0-d tensor.
    """

    #: how it is recorded and shown
    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: entry point package.module:function(design) -> 0-d tensor
    function: str
    #: upper limit of the value
    limit: float = Field(allow_inf_nan=False)
    #: penalty weight
    weight: float = Field(10.0, ge=0, allow_inf_nan=False)
    #: unit of the value, for display
    unit: str = ""

    @field_validator("function")
    @classmethod
    def _entry_point(cls, value: str) -> str:
        from detopt.entry_points import parse_entry_point

        parse_entry_point(value, "function")
        return value


class PenaltySettings(_Strict):
    #: total length, AIDO eq. 7 (null: none)
    length: LengthPenaltySettings | None = LengthPenaltySettings()
    #: cost, AIDO eqs. 8-9 (null: none)
    cost: CostPenaltySettings | None = CostPenaltySettings()
    #: constraints linear in the continuous parameters
    linear: list[LinearConstraintSettings] = []
    #: constraints computed by a user function
    custom: list[CustomConstraintSettings] = []

    @model_validator(mode="after")
    def _names(self) -> PenaltySettings:
        names = [c.name for c in self.linear] + [c.name for c in self.custom]
        reserved = {"length_cm", "cost_eur", "built_cost_eur"}
        for name in names:
            if names.count(name) > 1 or name in reserved:
                raise ConfigError("penalties", f"constraint name {name!r} is used twice or reserved ({', '.join(sorted(reserved))})")
        return self


class WidthSettings(_Strict):
    """The adaptive sampling width, in units of each parameter's sigma (detopt.optimize.width)."""

    #: first width, in units of each parameter's sigma
    initial: float = Field(1.0, gt=0, allow_inf_nan=False)
    #: narrowest width
    minimum: float = Field(0.125, gt=0, allow_inf_nan=False)
    #: widest width
    maximum: float = Field(4.0, gt=0, allow_inf_nan=False)
    #: improving steps in a row before the width doubles
    success_tolerance: int = Field(1, ge=1)
    #: failed steps in a row before the width halves
    failure_tolerance: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> WidthSettings:
        if not self.minimum <= self.initial <= self.maximum:
            raise ValueError(
                f"needs minimum <= initial <= maximum, got {self.minimum}, {self.initial}, {self.maximum}"
            )
        return self


class DiscreteSettings(_Strict):
    """How the categories (materials) are chosen (detopt.optimize.discrete)."""

    #: trust region of the probabilities: no probability moves by more than this in one iteration (None: no limit)
    max_change: float | None = Field(0.2, gt=0, le=1)
    #: every category is drawn with at least this probability while it is still optimized
    sampling_floor: float = Field(0.05, ge=0, lt=0.5)
    #: last iterations with every category fixed to the most probable one (the design that would be built)
    commit_iterations: int = Field(2, ge=0)


class OptimizerSettings(_Strict):
    #: step size of Adam: in units of each parameter's sigma (covariance: adaptive) or of its own unit (aido)
    lr: float = Field(0.1, gt=0, allow_inf_nan=False)  # AIDO 6.2: lr_O = 0.01 in raw units
    #: Adam step on the category logits (None: lr)
    lr_discrete: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: Adam steps per iteration at most (the step also ends on leaving the trust region)
    max_steps: int = Field(500, ge=1)
    #: AIDO eq. 4: the step stays within this Mahalanobis distance of the sampled designs
    trust_region_b: float = Field(0.8, gt=0)
    #: weight of the boundary penalty (AIDO eq. 3)
    boundary_weight: float = Field(1.0, ge=0)
    #: events of the surrogate averaged in each Adam step
    events: int = Field(1000, ge=1)
    #: also train the surrogate on the events of this many earlier iterations
    reuse_iterations: int = Field(0, ge=0)
    #: "adaptive": normalized coordinates, eq. 5 in units of an adaptive width; "aido": the published rule
    #: (eq. 5 in the parameters' own units, fixed sigma)
    covariance: Literal["adaptive", "aido"] = "adaptive"
    #: "fresh": new Adam moments every iteration (each has a new surrogate); "carry": as in the paper
    adam: Literal["fresh", "carry"] = "fresh"
    #: designs spread over the whole box (Latin hypercube) in the first iteration; 0: start locally
    global_designs: int = Field(0, ge=0, le=100_000)
    #: the step of an iteration starts from the design with the lowest fresh objective ("observed") or the
    #: lowest surrogate prediction ("surrogate")
    origin: Literal["observed", "surrogate"] = "observed"
    #: the adaptive sampling width
    width: WidthSettings = WidthSettings()
    #: how the categories are chosen
    discrete: DiscreteSettings = DiscreteSettings()

    @field_validator("global_designs")
    @classmethod
    def _not_one(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (no global phase) or >= 2 designs, got 1")
        return value


LOSSES = ("energy_resolution", "relative_resolution", "mse")
"""Built-in per-event losses: AIDO eq. 10, ((T_reco - T)/T)^2 and (T_reco - T)^2 (mean over targets)."""


class ReconstructionSettings(_Strict):
    #: None: the built-in network (AIDO Tables 2-3) over the features; or an entry point
    #: package.module:name of a function (design, features, context) -> reconstructed targets, or of a
    #: class with fit/predict/save/load (detopt.optimize.problem.ReconstructionStep)
    function: str | None = None
    #: training epochs of the built-in network per iteration (early stopping on a held-out fifth)
    epochs: int = Field(100, ge=1)
    #: Adam learning rate of the network
    lr: float = Field(1e-3, gt=0)
    #: events per batch
    batch_size: int = Field(256, ge=1)
    #: epochs without improvement before stopping (None: all epochs)
    patience: int | None = Field(10, ge=1)
    #: give the network the per-event context (e.g. the particle type)
    use_context: bool = False

    @field_validator("function")
    @classmethod
    def _entry_point(cls, value: str | None) -> str | None:
        if value is not None:
            from detopt.entry_points import parse_entry_point

            parse_entry_point(value, "reconstruction.function")
        return value


class SurrogateSettings(_Strict):
    #: widths of the denoiser's hidden layers (AIDO Table 1)
    hidden: tuple[int, ...] = (200, 100)
    #: diffusion steps of the noise schedule
    train_steps: int = Field(100, ge=2)
    #: DDIM sampling steps used inside the optimizer
    ddim_steps: int = Field(10, ge=1)
    sampler: Literal["ddim", "ddpm"] = "ddim"  # inside the optimizer: DDIM-ddim_steps or the full DDPM chain
    #: Adam learning rate
    lr: float = Field(1e-3, gt=0)
    #: training epochs per iteration
    epochs: int = Field(60, ge=1)
    #: events per batch
    batch_size: int = Field(256, ge=1)
    #: epochs without improvement before stopping (None: all epochs)
    patience: int | None = Field(10, ge=1)
    #: start each iteration's surrogate from the previous one
    warm_start: bool = True
    #: what the denoiser predicts: the velocity v or the noise epsilon
    prediction: Literal["v", "epsilon"] = "v"
    #: the part of the targets removed before diffusion: a linear mean and scale, a mean, an MLP, none
    residual: Literal["mean_scale", "mean", "mlp", "none"] = "mean_scale"

    @field_validator("hidden")
    @classmethod
    def _widths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 1 <= w <= 100_000 for w in value):
            raise ValueError("must be one or more layer widths, each a whole number from 1 to 100000")
        return value

    @model_validator(mode="after")
    def _steps(self) -> SurrogateSettings:
        if self.ddim_steps > self.train_steps:
            raise ConfigError("surrogate.ddim_steps", f"must be <= surrogate.train_steps = {self.train_steps}, got {self.ddim_steps}")
        return self


class RunConfig(_Strict):
    """The whole run; ``base_dir`` (not a YAML key) resolves relative file paths."""

    seed: int = Field(0, ge=0)  # every random draw of the run flows from it
    iterations: int = Field(10, ge=1)  # SRSO iterations (a rerun with more continues the run)
    run_dir: str | None = None  # where the run is written (relative to the working directory); or --run-dir
    design: dict[str, Any] | str  # the design space, inline or a design file (docs/your_detector.md)
    detector: dict[str, Any] | None = None  # the built-in calorimeter's layers (fastsim, geant4 only)
    #: folders (relative to the configuration) where the modules of user entry points are found
    python_path: list[str] = []
    #: a YAML file of materials that extends the built-in table (docs/your_detector.md)
    materials: str | None = None
    #: the per-event loss: energy_resolution (AIDO eq. 10), relative_resolution ((T_reco - T)/T)^2,
    #: mse (T_reco - T)^2, or an entry point package.module:function(T_reco, T) -> per-event tensor
    loss: str = "energy_resolution"
    #: what is simulated and how many events
    simulation: SimulationSettings = SimulationSettings()
    #: where the simulations run
    execution: ExecutionSettings = ExecutionSettings()
    #: constraints of the design
    penalties: PenaltySettings = PenaltySettings()
    #: how the design moves
    optimizer: OptimizerSettings = OptimizerSettings()
    #: the reconstruction (built-in network or yours)
    reconstruction: ReconstructionSettings = ReconstructionSettings()
    #: the diffusion surrogate
    surrogate: SurrogateSettings = SurrogateSettings()

    @model_validator(mode="before")
    @classmethod
    def _user_penalties(cls, data: Any) -> Any:
        """The length and cost penalties default to the built-in calorimeter's; a user's detector has only
        the penalties it names."""
        if isinstance(data, dict) and isinstance(data.get("simulation"), dict):
            if data["simulation"].get("simulator") in ("command", "python"):
                penalties = data.get("penalties")
                penalties = dict(penalties) if isinstance(penalties, dict) else ({} if penalties is None else penalties)
                if isinstance(penalties, dict):
                    penalties.setdefault("length", None)
                    penalties.setdefault("cost", None)
                    data = {**data, "penalties": penalties}
        return data

    @model_validator(mode="after")
    def _related(self) -> RunConfig:
        if self.execution.min_designs > self.simulation.designs_per_iteration:
            raise ConfigError(
                "execution.min_designs",
                f"must be <= simulation.designs_per_iteration = {self.simulation.designs_per_iteration}, "
                f"got {self.execution.min_designs}",
            )
        if self.loss not in LOSSES:
            from detopt.entry_points import parse_entry_point

            try:
                parse_entry_point(self.loss, "loss")
            except ConfigError:
                raise ConfigError("loss", f"must be one of {', '.join(LOSSES)} or an entry point 'package.module:function', got {self.loss!r}") from None
        builtin = self.simulation.simulator in ("fastsim", "geant4")
        if not builtin and self.detector is not None:
            raise ConfigError("detector", f"is the built-in calorimeter's layout, not used by simulator {self.simulation.simulator!r}; remove it")
        if not builtin and self.reconstruction.use_context and self.simulation.columns is not None and not self.simulation.columns.context:
            raise ConfigError("reconstruction.use_context", "is true but simulation.columns.context names no column")
        if self.materials is not None and not builtin:
            raise ConfigError("materials", f"extends the built-in calorimeter's material table, not used by simulator {self.simulation.simulator!r}")
        return self

    def base_path(self, base_dir: Path | None, value: str) -> Path:
        """A path of the configuration: relative ones start from the configuration's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path

    def import_path(self, base_dir: Path | None) -> tuple[str, ...]:
        """The absolute folders of ``python_path`` (each must exist)."""
        folders = []
        for i, value in enumerate(self.python_path):
            path = self.base_path(base_dir, value).resolve()
            if not path.is_dir():
                raise ConfigError(f"python_path[{i}]", f"{path} is not a folder")
            folders.append(str(path))
        return tuple(folders)

    # ------------------------------------------------------------------ resolved pieces
    def design_space(self, base_dir: Path | None = None) -> DesignSpace:
        if isinstance(self.design, str):
            path = Path(self.design)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            return DesignSpace.load(path)
        try:
            return DesignSpace.from_mapping(self.design, source="design")
        except ConfigError as exc:
            raise ConfigError(f"design.{exc.field}", exc.message) from None

    def material_table(self, base_dir: Path | None = None) -> dict[str, Any]:
        """The user's materials (``materials``: a YAML file), to extend the built-in table; {} without one."""
        if self.materials is None:
            return {}
        from detopt.detector.materials import load_material_file

        return load_material_file(self.base_path(base_dir, self.materials), field="materials")

    def layout(self, space: DesignSpace, materials: dict[str, Any] | None = None) -> Any:
        from detopt.detector import CalorimeterLayout

        if self.detector is None:
            raise ConfigError("detector", f"the {self.simulation.simulator} simulator needs a detector layout (layers, transverse_size_cm)")
        layout = CalorimeterLayout.from_dict(self.detector)
        missing = sorted(
            n for spec in layout.layers for n, fixed in ((f"{spec.name}_thickness", spec.thickness_cm), (f"{spec.name}_material", spec.material))
            if fixed is None and n not in space
        )
        if missing:
            raise ConfigError("detector.layers", f"the design has no parameter(s) {', '.join(missing)} and the layout fixes none")
        _check_materials(layout, space, materials or {}, self.simulation.simulator)
        return layout

    def resolved(self, base_dir: Path | None = None) -> dict[str, Any]:
        """A self-contained mapping (the design inlined) that validates back to the same config."""
        data = self.model_dump(mode="json")
        data["design"] = self.design_space(base_dir).to_dict()
        data["python_path"] = [str(self.base_path(base_dir, p).resolve()) for p in self.python_path]
        if self.materials is not None:
            data["materials"] = str(self.base_path(base_dir, self.materials).resolve())
        command = data["simulation"].get("command")
        if command is not None:
            folder = command.get("working_dir") or "."
            command["working_dir"] = str(self.base_path(base_dir, folder).resolve())
        return data


def _check_materials(layout: Any, space: DesignSpace, extra: dict[str, Any], simulator: str) -> None:
    """Every material a layer can take (each category of its material parameter, or the fixed one) is in the
    table (built-in and the user's) and can be built by the chosen simulator."""
    from detopt.detector.materials import get_material

    for spec in layout.layers:
        name = f"{spec.name}_material"
        if name in space:
            choices, field = space[name].categories, f"design.parameters[{name}].categories"  # type: ignore[union-attr]
        else:
            choices, field = (spec.material,), f"detector.layers[{spec.name}].material"
        for choice in choices:
            try:
                material = get_material(str(choice), extra)
                if simulator == "geant4":
                    from detopt.simulation.geant4.materials import geant4_material_spec

                    geant4_material_spec(material)
            except ConfigError as exc:
                raise ConfigError(field, exc.message) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[RunConfig, Path]:
    """Read and validate a YAML run configuration; returns it with the folder relative paths start from."""
    path = Path(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "configuration file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not a text (UTF-8) YAML file: byte {exc.start} cannot be decoded") from None
    except OSError as exc:  # a folder, no permission
        raise ConfigError(str(path), f"cannot read the configuration file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"malformed YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "a run configuration must be a mapping of keys to values")
    raw.update(overrides or {})
    return validate_config(raw), path.parent


def validate_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a mapping into a :class:`RunConfig`; the first problem (unknown keys first, as they
    are usually typos) becomes a ConfigError."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):  # a validator that already names the field and the allowed values
            raise ConfigError(cause.field, cause.message) from None
        field = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            message = f"unknown key {str(err['loc'][-1])!r}"
        else:
            message = f"{err['msg'].removeprefix('Value error, ')}, got {err.get('input')!r}"
        raise ConfigError(field, message) from None
