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

__all__ = ["RunConfig", "load_config"]

class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe YAML loader (in C where libyaml is present) that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeConstructor reports it
                break
            if duplicate:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice (line {line})", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YAML_LOADER = _UniqueKeyLoader
"""The safe YAML loader with duplicate keys refused."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulationSettings(_Strict):
    simulator: Literal["fastsim", "geant4"] = "fastsim"
    #: Geant4 data folder (official data sets, or one made by `detopt geant4 offline-data DIR`); None: look
    #: in the usual variables (GEANT4_DATA_DIR, G4*DATA).
    geant4_data_dir: str | None = None
    particles: tuple[str, ...] = ("gamma", "pi+")
    energy_range_gev: tuple[float, float] = (1.0, 20.0)
    events_per_design: int = Field(400, ge=1, le=10_000_000)  # one design's events are held in memory together
    designs_per_iteration: int = Field(20, ge=2, le=10_000)
    #: simulate every design of an iteration with the same seed (the same beam particles): design-to-design
    #: differences are then far less noisy (common random numbers)
    common_random_numbers: bool = True

    @field_validator("energy_range_gev")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] < value[1] <= 100_000:
            raise ValueError(f"must be (min, max) with 0 < min < max <= 100000 GeV, got {value}")
        return value


class ExecutionSettings(_Strict):
    #: where simulations run: a Dask LocalCluster, in-process, a batch system through dask-jobqueue, or an
    #: existing scheduler at ``address`` ("dask" is the old name of "address"); docs/clusters.md
    backend: Literal["local", "serial", "slurm", "htcondor", "pbs", "lsf", "address", "dask"] = "local"
    n_workers: int = Field(2, ge=1)
    address: str | None = None
    retries: int = Field(1, ge=0)
    torch_threads: int | None = Field(1, ge=1)
    #: seconds one simulation attempt may run before it is interrupted and counted as failed (None: no limit)
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: designs per iteration that must simulate successfully; with fewer the run stops with a message
    min_designs: int = Field(2, ge=2)
    #: the batch jobs of the slurm, htcondor, pbs and lsf backends (detopt.execution.clusters)
    cluster: ClusterSettings | None = None
    #: where the driver trains the networks: "auto" is CUDA when available (``detopt optimize --device``)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _fits_backend(self) -> ExecutionSettings:
        check_execution(self.backend, self.cluster, self.address)
        return self


class LengthPenaltySettings(_Strict):
    limit_cm: float = Field(200.0, gt=0)  # AIDO 6.1: d_max = 200 cm
    weight: float = Field(10.0, ge=0)  # AIDO eq. 7: factor 10
    parameters: list[str] | None = None


class CostPenaltySettings(_Strict):
    limit_eur: float = Field(200_000.0, gt=0)  # AIDO 6.1: cost_max = 200k EUR
    weight: float = Field(1.0, ge=0)  # AIDO eq. 9
    lengths: dict[str, str] | None = None


class PenaltySettings(_Strict):
    length: LengthPenaltySettings | None = LengthPenaltySettings()
    cost: CostPenaltySettings | None = CostPenaltySettings()


class WidthSettings(_Strict):
    """The adaptive sampling width, in units of each parameter's sigma (detopt.optimize.width)."""

    initial: float = Field(1.0, gt=0, allow_inf_nan=False)
    minimum: float = Field(0.125, gt=0, allow_inf_nan=False)
    maximum: float = Field(4.0, gt=0, allow_inf_nan=False)
    success_tolerance: int = Field(1, ge=1)
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
    lr_discrete: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_steps: int = Field(500, ge=1)
    trust_region_b: float = Field(0.8, gt=0)  # AIDO eq. 4
    boundary_weight: float = Field(1.0, ge=0)
    events: int = Field(1000, ge=1)
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
    width: WidthSettings = WidthSettings()
    discrete: DiscreteSettings = DiscreteSettings()

    @field_validator("global_designs")
    @classmethod
    def _not_one(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (no global phase) or >= 2 designs, got 1")
        return value


class ReconstructionSettings(_Strict):
    epochs: int = Field(100, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(256, ge=1)
    patience: int | None = Field(10, ge=1)
    use_context: bool = False


class SurrogateSettings(_Strict):
    hidden: tuple[int, ...] = (200, 100)  # AIDO Table 1
    train_steps: int = Field(100, ge=2)
    ddim_steps: int = Field(10, ge=1)
    sampler: Literal["ddim", "ddpm"] = "ddim"  # inside the optimizer: DDIM-ddim_steps or the full DDPM chain
    lr: float = Field(1e-3, gt=0)  # AIDO 6.2: lr_S
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(256, ge=1)
    patience: int | None = Field(10, ge=1)
    warm_start: bool = True
    prediction: Literal["v", "epsilon"] = "v"
    residual: Literal["mean_scale", "mean", "none"] = "mean_scale"

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

    seed: int = Field(0, ge=0)
    iterations: int = Field(10, ge=1)
    run_dir: str | None = None
    design: dict[str, Any] | str
    detector: dict[str, Any] | None = None
    simulation: SimulationSettings = SimulationSettings()
    execution: ExecutionSettings = ExecutionSettings()
    penalties: PenaltySettings = PenaltySettings()
    optimizer: OptimizerSettings = OptimizerSettings()
    reconstruction: ReconstructionSettings = ReconstructionSettings()
    surrogate: SurrogateSettings = SurrogateSettings()

    @model_validator(mode="after")
    def _related(self) -> RunConfig:
        if self.execution.min_designs > self.simulation.designs_per_iteration:
            raise ConfigError(
                "execution.min_designs",
                f"must be <= simulation.designs_per_iteration = {self.simulation.designs_per_iteration}, "
                f"got {self.execution.min_designs}",
            )
        return self

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

    def layout(self, space: DesignSpace) -> Any:
        from detopt.detector import CalorimeterLayout

        if self.detector is None:
            raise ConfigError("detector", "the fastsim simulator needs a detector layout (layers, transverse_size_cm)")
        layout = CalorimeterLayout.from_dict(self.detector)
        missing = sorted(
            n for spec in layout.layers for n, fixed in ((f"{spec.name}_thickness", spec.thickness_cm), (f"{spec.name}_material", spec.material))
            if fixed is None and n not in space
        )
        if missing:
            raise ConfigError("detector.layers", f"the design has no parameter(s) {', '.join(missing)} and the layout fixes none")
        _check_materials(layout, space)
        return layout

    def resolved(self, base_dir: Path | None = None) -> dict[str, Any]:
        """A self-contained mapping (the design inlined) that validates back to the same config."""
        data = self.model_dump(mode="json")
        data["design"] = self.design_space(base_dir).to_dict()
        return data


def _check_materials(layout: Any, space: DesignSpace) -> None:
    """Every material a layer can take (each category of its material parameter, or the fixed one) is in the table."""
    from detopt.detector.materials import get_material

    for spec in layout.layers:
        name = f"{spec.name}_material"
        if name in space:
            choices, field = space[name].categories, f"design.parameters[{name}].categories"  # type: ignore[union-attr]
        else:
            choices, field = (spec.material,), f"detector.layers[{spec.name}].material"
        for choice in choices:
            try:
                get_material(str(choice))
            except ConfigError as exc:
                raise ConfigError(field, exc.message) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[RunConfig, Path]:
    """Read and validate a YAML run configuration; returns it with the folder relative paths start from."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
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
