"""Voxelized shower data sets for the shower-level surrogate (DESIGN.md section 4).

A data set is a set of energy maps ``(n, n_depth, n_radial)`` in GeV (depth slices x radial
rings, CaloChallenge-like), each with the conditioning vector of the shower that made it. The
conditions are *physical*: the beam (energy, particle) and the detector described by its
material's properties (X0, Moliere radius, critical energy, density) and its size (depth,
radial extent), so that a new material is a new point in a known space rather than a new index.

Two detector families are predefined:

* `GEOMETRY_A`: homogeneous blocks of eight dense materials of the PDG table, 15-30 X0 deep,
  with a radial extent (the calorimeter cell) of 1.5-4 Moliere radii.
* `GEOMETRY_B`: a Pb / polystyrene sampling calorimeter (absorber : scintillator = 2 : 1 in
  thickness), whose maps hold only the energy seen by the scintillator of each cell (the
  visible energy, about the sampling fraction of the total).

Any other sampling calorimeter is a `CellSampling` geometry: a cell of layers in cm (several
per cell, any of them active) repeated along the depth, usually read from a YAML file with
`load_shower_geometry` (``--geometry-file`` on the command line; docs/shower.md).

Maps are made through the `Simulator` protocol (the built-in `FastShowerSimulator` by default;
`Geant4Simulator` works the same way), one call per condition with a recorded seed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Union

import numpy as np
from pydantic import (
    BaseModel, ConfigDict, Discriminator, Field, SerializerFunctionWrapHandler, Tag, ValidationError, ValidationInfo,
    field_validator, model_serializer, model_validator,
)

from detopt.atomic import atomic_path, read_parquet
from detopt.detector.calorimeter import Layer, SamplingCalorimeter
from detopt.detector.materials import (
    SCALE_ENERGY_MEV, Material, get_material, load_material_file, material_from_mapping,
)
from detopt.errors import ConfigError, DataError
from detopt.simulation.particles import PARTICLES, parse_particles
from detopt.simulation.protocol import Simulator
from detopt.simulation.voxels import VoxelGrid

__all__ = [
    "ABSORBER",
    "GEOMETRIES",
    "GEOMETRY_A",
    "GEOMETRY_B",
    "SHOWER_CONDITIONS",
    "SUBSAMPLE_BY",
    "CellLayer",
    "CellSampling",
    "SamplingStructure",
    "ShowerCondition",
    "ShowerDataset",
    "ShowerGeometry",
    "condition_vector",
    "draw_shower_conditions",
    "effective_material",
    "generate_shower_dataset",
    "get_geometry",
    "grid_shower_conditions",
    "load_shower_geometry",
    "mip_sampling_fraction",
    "simulate_condition",
]

#: Columns of the conditioning vector, in physical units. ``particle_<name>`` is a one-hot over
#: `PARTICLES`. For a sampling calorimeter the material columns are the effective values of the
#: absorber + active mixture (`effective_material`) and ``sampling_fraction`` is the MIP sampling
#: fraction of the active layers (1 for a homogeneous block).
SHOWER_CONDITIONS: tuple[str, ...] = (
    "energy_gev",
    *(f"particle_{p}" for p in PARTICLES),
    "x0_cm",
    "moliere_radius_cm",
    "critical_energy_mev",
    "density_g_cm3",
    "depth_cm",
    "r_max_cm",
    "sampling_fraction",
)

#: Format tag of the Parquet file metadata (bumped when the layout changes).
_FORMAT = "detopt.shower_dataset/1"
_META_KEY = b"detopt_shower"
_MAP_COLUMN = "map_gev"


# -- geometry -----------------------------------------------------------------------------------
#: The layer material that stands for the condition's absorber in a `CellSampling` cell.
ABSORBER = "absorber"


class SamplingStructure(BaseModel):
    """Repeated cells of absorber then active layer; the map's depth slices are the cells and hold
    the active layer's deposit only. Thicknesses are in the ratio ``absorber_units : active_units``
    (whole numbers, so that both layers fall on the simulator's slice edges); the cell thickness
    follows the condition's depth (one cell per depth slice). Geometry B."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    active: str = "polystyrene"
    absorber_units: int = Field(default=2, ge=1, le=20)
    active_units: int = Field(default=1, ge=1, le=20)

    @field_validator("active")
    @classmethod
    def _known_active(cls, v: str) -> str:
        return get_material(v).name


class CellLayer(BaseModel):
    """One layer of a sampling cell: ``thickness_cm`` of ``material`` (``"absorber"``: the condition's
    absorber, one of the geometry's ``materials``); ``active`` if its deposit is read out."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    material: str = Field(min_length=1)
    thickness_cm: float
    active: bool = False

    @field_validator("thickness_cm")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"must be a finite number > 0 cm, got {v!r}")
        return v


class CellSampling(BaseModel):
    """A sampling calorimeter of one cell (``cell``: its layers, front to back, thicknesses in cm)
    repeated along the depth. The map's depth slices hold the deposits of the active layers only.

    Every depth slice of the map holds the same whole number k of cells: ``cells_per_slice`` if
    given (the depth is then fixed, n_depth x k cells, whatever the condition asks), otherwise
    k = max(1, round(depth / (n_depth x cell thickness))), so that the number of cells follows from
    the condition's depth and the cell thickness, rounded to whole slices (the calorimeter built,
    and the depth recorded with its maps, is n_depth x k cells deep; see
    `ShowerGeometry.built_depth_cm`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    cell: tuple[CellLayer, ...] = Field(min_length=1, max_length=100)
    cells_per_slice: int | None = Field(default=None, ge=1, le=1000)

    @field_validator("cell")
    @classmethod
    def _one_active(cls, v: tuple[CellLayer, ...]) -> tuple[CellLayer, ...]:
        if not any(layer.active for layer in v):
            raise ValueError("needs at least one layer with active: true (the read-out layer)")
        return v

    @property
    def thickness_cm(self) -> float:
        """Thickness of one cell (cm)."""
        return float(sum(layer.thickness_cm for layer in self.cell))


def _sampling_kind(value: Any) -> str:
    """Which sampling description a mapping (or model) is: layers in cm (``cell``) or whole-number units."""
    if isinstance(value, Mapping):
        return "by_layers" if "cell" in value else "by_units"
    return "by_layers" if isinstance(value, CellSampling) else "by_units"


_Sampling = Annotated[
    Union[Annotated[SamplingStructure, Tag("by_units")], Annotated[CellSampling, Tag("by_layers")]],
    Discriminator(_sampling_kind),
]


class ShowerGeometry(BaseModel):
    """A family of calorimeters to draw showers from.

    ``materials``: the homogeneous block materials, or the absorbers if ``sampling`` is set.
    ``depth_x0_range``: total depth in (effective) radiation lengths of the material.
    ``r_max_moliere_range``: radial extent of the rings, i.e. the radius of the calorimeter cell
    (the area-equivalent circle of its square face), in (effective) Moliere radii. Ranges are in
    the material's own units so that every material sees the same range of containment.
    ``sampling``: none (homogeneous blocks), `SamplingStructure` (absorber : active in whole units,
    geometry B) or `CellSampling` (a cell of layers in cm, e.g. from a geometry file).
    ``extra_materials``: a user's materials (the entries of a material file,
    `detopt.detector.materials.load_material_file`), kept in the geometry so that a data set's
    provenance is complete without the file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    extra_materials: tuple[dict[str, Any], ...] = ()
    materials: tuple[str, ...] = Field(min_length=1)
    depth_x0_range: tuple[float, float] = (15.0, 30.0)
    r_max_moliere_range: tuple[float, float] = (1.5, 4.0)
    sampling: _Sampling | None = None

    @field_validator("extra_materials")
    @classmethod
    def _valid_extras(cls, v: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        names = [material_from_mapping(entry, f"extra_materials[{i}]", "user material").name for i, entry in enumerate(v)]
        if len(set(names)) != len(names):
            raise ValueError(f"material names must be distinct, got {names}")
        return v

    @field_validator("materials")
    @classmethod
    def _known_materials(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        table = _table_of(info.data.get("extra_materials", ()))
        names = tuple(get_material(m, table).name for m in v)
        if len(set(names)) != len(names):
            raise ValueError(f"materials must be distinct, got {list(v)}")
        return names

    @field_validator("depth_x0_range", "r_max_moliere_range")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(f"needs 0 < min <= max, got ({lo}, {hi})")
        return v

    @model_validator(mode="after")
    def _known_layer_materials(self) -> "ShowerGeometry":
        if isinstance(self.sampling, CellSampling):
            table = self.material_table()
            for i, layer in enumerate(self.sampling.cell):
                if layer.material != ABSORBER:
                    try:
                        get_material(layer.material, table)
                    except ConfigError as exc:
                        raise ConfigError(f"sampling.cell[{i}].material", f"{exc.message} (or {ABSORBER!r})") from None
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without user materials the dump is the same as before they existed (old provenance)."""
        out: dict[str, Any] = handler(self)
        if not out.get("extra_materials", True):
            del out["extra_materials"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ShowerGeometry":
        """Validate a mapping (e.g. from YAML); errors become `ConfigError` naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            cause = err.get("ctx", {}).get("error")
            if isinstance(cause, ConfigError):  # a validator that names the field itself where pydantic cannot
                raise ConfigError(_error_location(err["loc"]) if err["loc"] else "geometry." + cause.field,
                                  cause.message) from None
            raise ConfigError(_error_location(err["loc"]), str(err["msg"]).removeprefix("Value error, ")) from None

    def material_table(self) -> dict[str, Material]:
        """The user's materials by name ({} for none)."""
        return _table_of(self.extra_materials)

    def effective(self, material: str) -> tuple[Material, float]:
        """The (effective) material of the calorimeter built on ``material`` and its sampling fraction."""
        mat = self._material(material)
        if self.sampling is None:
            return mat, 1.0
        if isinstance(self.sampling, CellSampling):
            parts = self._cell_parts(mat)
            active = [layer.active for layer in self.sampling.cell]
            return effective_material(parts), mip_sampling_fraction(parts, active)
        active_mat = get_material(self.sampling.active)
        parts = [(mat, float(self.sampling.absorber_units)), (active_mat, float(self.sampling.active_units))]
        return effective_material(parts), mip_sampling_fraction(parts)

    def cells_per_slice(self, depth_cm: float, n_depth: int) -> int:
        """Cells in each depth slice of an ``n_depth``-slice map of a calorimeter ``depth_cm`` deep
        (1 for every geometry but a `CellSampling` one; see there)."""
        if not isinstance(self.sampling, CellSampling):
            return 1
        if self.sampling.cells_per_slice is not None:
            return self.sampling.cells_per_slice
        return max(1, int(round(float(depth_cm) / (n_depth * self.sampling.thickness_cm))))

    def built_depth_cm(self, depth_cm: float, n_depth: int) -> float:
        """The depth of the calorimeter actually built for a condition ``depth_cm`` deep: ``depth_cm``
        itself, except for a `CellSampling` geometry (whole cells, the same number in every slice)."""
        if not isinstance(self.sampling, CellSampling):
            return depth_cm
        return n_depth * self.cells_per_slice(depth_cm, n_depth) * self.sampling.thickness_cm

    def simulation_grid(self, grid: VoxelGrid, cells_per_slice: int = 1) -> VoxelGrid:
        """The grid the simulator must record on to give maps on ``grid``: the rings always span the
        cell (``r_max_cm`` unset, so the area-equivalent radius of the face); a sampling
        calorimeter is recorded per layer (``absorber_units + active_units`` equal slices per cell,
        or one slice per layer of a `CellSampling` cell, ``cells_per_slice`` cells per map slice)."""
        if isinstance(self.sampling, CellSampling):
            thick = np.tile([layer.thickness_cm for layer in self.sampling.cell], grid.n_depth * cells_per_slice)
            fractions = np.concatenate([[0.0], np.cumsum(thick) / thick.sum()])
            fractions[-1] = 1.0
            return grid.model_copy(update={"r_max_cm": None, "n_depth": len(thick),
                                           "depth_fractions": tuple(float(f) for f in fractions)})
        units = 1 if self.sampling is None else self.sampling.absorber_units + self.sampling.active_units
        return grid.model_copy(update={"r_max_cm": None, "n_depth": grid.n_depth * units})

    def detector(self, material: str, depth_cm: float, r_max_cm: float, n_cells: int = 1) -> SamplingCalorimeter:
        """The calorimeter on ``material`` with total depth ``depth_cm`` and a square face whose
        area-equivalent radius is ``r_max_cm``; a sampling geometry has ``n_cells`` cells (a
        `CellSampling` cell has its own thickness: its depth is ``n_cells`` cells, not ``depth_cm``)."""
        mat = self._material(material)
        for fname, v in (("depth_cm", depth_cm), ("r_max_cm", r_max_cm)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(fname, f"must be a finite number > 0 cm, got {v!r}")
        size = float(r_max_cm) * math.sqrt(math.pi)
        if self.sampling is None:
            return SamplingCalorimeter((Layer("block", mat, float(depth_cm), True),), size)
        if isinstance(self.sampling, CellSampling):
            parts = self._cell_parts(mat)
            flags = [layer.active for layer in self.sampling.cell]
            return SamplingCalorimeter(tuple(
                Layer(f"c{k}l{j}", m, t, a) for k in range(n_cells) for j, ((m, t), a) in enumerate(zip(parts, flags))
            ), size)
        a, b = self.sampling.absorber_units, self.sampling.active_units
        unit = float(depth_cm) / (n_cells * (a + b))
        active = get_material(self.sampling.active)
        layers: list[Layer] = []
        for k in range(n_cells):
            layers.append(Layer(f"abs{k}", mat, a * unit, False))
            layers.append(Layer(f"act{k}", active, b * unit, True))
        return SamplingCalorimeter(tuple(layers), size)

    def _cell_parts(self, absorber: Material) -> list[tuple[Material, float]]:
        """(material, thickness cm) of each layer of the cell, ``"absorber"`` replaced by ``absorber``."""
        assert isinstance(self.sampling, CellSampling)
        table = self.material_table()
        return [(absorber if layer.material == ABSORBER else get_material(layer.material, table), layer.thickness_cm)
                for layer in self.sampling.cell]

    def _material(self, material: str) -> Material:
        mat = get_material(material, self.material_table())
        if mat.name not in self.materials:
            raise ConfigError("material", f"{material!r} is not in geometry {self.name!r}; allowed: {', '.join(self.materials)}")
        return mat


def _table_of(entries: Sequence[Mapping[str, Any]]) -> dict[str, Material]:
    materials = (material_from_mapping(e, f"extra_materials[{i}]", "user material") for i, e in enumerate(entries))
    return {m.name: m for m in materials}


def _error_location(loc: Sequence[Any]) -> str:
    """``geometry.sampling.cell[1].thickness_cm`` from a pydantic location (union tags dropped)."""
    out = "geometry"
    for part in loc:
        if part in ("by_units", "by_layers"):
            continue
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _material_entry(m: Material) -> dict[str, Any]:
    """A material as an entry of a material file (`material_from_mapping` reads it back)."""
    entry: dict[str, Any] = {"name": m.name, **{k: getattr(m, k) for k in (
        "density_g_cm3", "radiation_length_cm", "nuclear_interaction_length_cm", "pion_interaction_length_cm",
        "critical_energy_mev", "dedx_min_mev_cm", "z_eff", "z_over_a")}}
    if m.geant4 is not None:
        entry["geant4"] = dict(m.geant4)
    return entry


def load_shower_geometry(path: str | Path) -> ShowerGeometry:
    """A geometry from a YAML file: the fields of `ShowerGeometry` (``sampling`` with a ``cell`` of
    layers in cm, `CellSampling`) and optionally ``materials_file``, a material file (relative to
    the geometry file) whose materials may be used by name. Read with the safe loader of the run
    configuration (duplicate keys and aliases refused); any problem is a `ConfigError` naming the field."""
    import yaml

    from detopt.safe_yaml import load_yaml

    path = Path(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("geometry_file", f"geometry file {path} not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("geometry_file", f"{path} is not a text (UTF-8) YAML file: byte {exc.start} cannot be decoded") from None
    except OSError as exc:
        raise ConfigError("geometry_file", f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("geometry_file", f"malformed YAML in {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError("geometry_file", f"{path} must be a mapping of keys (name, materials, sampling, ...) to values")
    data = dict(raw)
    materials_file = data.pop("materials_file", None)
    if materials_file is not None:
        if not isinstance(materials_file, str) or not materials_file.strip():
            raise ConfigError("geometry.materials_file", f"must be a file name, got {materials_file!r}")
        extra = load_material_file(path.parent / materials_file, field="geometry.materials_file")
        data["extra_materials"] = [*data.get("extra_materials", []), *(_material_entry(m) for m in extra.values())]
    return ShowerGeometry.from_dict(data)


def effective_material(parts: Sequence[tuple[Material, float]]) -> Material:
    """Effective X0, Moliere radius, critical energy and density of a layered mixture (thickness weights).

    PDG "Passage of particles through matter" (mixtures): 1/X0 = sum_j w_j / X_j and
    1/R_M = (1/E_s) sum_j w_j E_cj / X_j with mass fractions w_j and X_j in g/cm^2; then
    E_c = E_s X0 / R_M (PDG eq. 34.37) and the density is the thickness-weighted mean.
    The other properties are thickness-weighted means (they are not conditions).
    """
    t = np.array([float(w) for _, w in parts])
    rho = np.array([m.density_g_cm3 for m, _ in parts])
    x0_g = np.array([m.radiation_length_cm * m.density_g_cm3 for m, _ in parts])
    ec = np.array([m.critical_energy_mev for m, _ in parts])
    density = float((t * rho).sum() / t.sum())
    w = t * rho / (t * rho).sum()
    x0_cm = float(1.0 / (w / x0_g).sum() / density)
    rm_cm = float(SCALE_ENERGY_MEV / (w * ec / x0_g).sum() / density)
    ec_eff = SCALE_ENERGY_MEV * x0_cm / rm_cm

    def mean(attr: str) -> float:
        return float((t * np.array([getattr(m, attr) for m, _ in parts])).sum() / t.sum())

    name = "+".join(f"{m.name}:{w:g}" for m, w in parts)
    return Material(
        name, density, x0_cm, mean("nuclear_interaction_length_cm"), mean("pion_interaction_length_cm"),
        ec_eff, mean("dedx_min_mev_cm"), mean("z_eff"), mean("z_over_a"),
        {"all": "effective values of a layered mixture (detopt.simulation.shower_dataset.effective_material)"},
    )


def mip_sampling_fraction(parts: Sequence[tuple[Material, float]], active: Sequence[bool] | None = None) -> float:
    """MIP sampling fraction of the active parts (``active``; default: the last part only):
    sum_act t dE/dx / sum_j t_j dE/dx_j (PDG Calorimetry), thicknesses t in any common unit."""
    loss = [m.dedx_min_mev_cm * float(t) for m, t in parts]
    flags = [False] * (len(parts) - 1) + [True] if active is None else list(active)
    return float(sum(x for x, a in zip(loss, flags) if a) / sum(loss))


#: Homogeneous blocks of eight dense materials of the PDG table (detector family A).
GEOMETRY_A = ShowerGeometry(
    name="A", materials=("Pb", "W", "Fe", "Cu", "PbWO4", "PbF2", "BGO", "CsI"),
    depth_x0_range=(15.0, 30.0), r_max_moliere_range=(1.5, 4.0),
)
#: Pb / polystyrene sampling calorimeter, 2 : 1 in thickness, maps of the visible energy (family B).
GEOMETRY_B = ShowerGeometry(
    name="B", materials=("Pb",), depth_x0_range=(15.0, 30.0), r_max_moliere_range=(1.5, 4.0),
    sampling=SamplingStructure(active="polystyrene", absorber_units=2, active_units=1),
)
#: The predefined geometries by name, for the command line and the benchmarks.
GEOMETRIES: Mapping[str, ShowerGeometry] = MappingProxyType({"A": GEOMETRY_A, "B": GEOMETRY_B})
#: How ``ShowerDataset.subsample`` draws a share: of the showers of every condition, or of the conditions.
SUBSAMPLE_BY: tuple[str, ...] = ("showers", "conditions")


def get_geometry(name: str | ShowerGeometry) -> ShowerGeometry:
    """A predefined geometry by name (``"A"``, ``"B"``), or the geometry itself."""
    if isinstance(name, ShowerGeometry):
        return name
    key = str(name).strip().upper()
    if key not in GEOMETRIES:
        raise ConfigError("geometry", f"unknown geometry {name!r}; allowed: {', '.join(GEOMETRIES)}")
    return GEOMETRIES[key]


# -- conditions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShowerCondition:
    """One point of the condition space: the beam and one concrete calorimeter of a geometry."""

    particle: str
    energy_gev: float
    material: str
    depth_cm: float
    r_max_cm: float

    def as_dict(self) -> dict[str, object]:
        return {"particle": self.particle, "energy_gev": self.energy_gev, "material": self.material,
                "depth_cm": self.depth_cm, "r_max_cm": self.r_max_cm}


def condition_vector(geometry: ShowerGeometry, condition: ShowerCondition) -> np.ndarray:
    """The conditioning vector of ``condition``, ordered as `SHOWER_CONDITIONS` (float64).

    Only ``depth_cm`` and ``r_max_cm`` depend on the calorimeter's size: the derivative of the
    vector with respect to either is the unit vector of its column (used by the gradient check).
    """
    mat, f_samp = geometry.effective(condition.material)
    values: dict[str, float] = {
        "energy_gev": float(condition.energy_gev),
        **{f"particle_{p}": float(p == condition.particle) for p in PARTICLES},
        "x0_cm": mat.radiation_length_cm,
        "moliere_radius_cm": mat.moliere_radius_cm,
        "critical_energy_mev": mat.critical_energy_mev,
        "density_g_cm3": mat.density_g_cm3,
        "depth_cm": float(condition.depth_cm),
        "r_max_cm": float(condition.r_max_cm),
        "sampling_fraction": f_samp,
    }
    return np.array([values[c] for c in SHOWER_CONDITIONS], dtype=np.float64)


def _check_energy_range(energy_range: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in energy_range)
    except (TypeError, ValueError):
        raise ConfigError("energy_range", f"must be two numbers (min, max) in GeV, got {energy_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ConfigError("energy_range", f"needs 0 < min <= max (GeV, finite), got ({lo}, {hi})")
    return lo, hi


def _check_energies(energies_gev: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(e) for e in energies_gev)
    if not out or not all(math.isfinite(e) and e > 0 for e in out):
        raise ConfigError("energies_gev", f"must be one or more finite energies > 0 GeV, got {list(energies_gev)!r}")
    return out


def draw_shower_conditions(
    geometry: ShowerGeometry,
    n_conditions: int,
    rng: np.random.Generator,
    *,
    particles: Sequence[str] | str = ("gamma", "e-"),
    energy_range: tuple[float, float] = (1.0, 100.0),
    energies_gev: Sequence[float] | None = None,
) -> list[ShowerCondition]:
    """``n_conditions`` random conditions: energy log-uniform in ``energy_range`` (or uniform over the
    list ``energies_gev``), particle and material uniform, depth and radial extent uniform in the
    geometry's ranges (in units of the material's X0 and Moliere radius)."""
    if isinstance(n_conditions, bool) or not isinstance(n_conditions, (int, np.integer)) or n_conditions <= 0:
        raise ConfigError("n_conditions", f"must be a whole number > 0, got {n_conditions!r}")
    species = parse_particles(particles)
    out = []
    for _ in range(int(n_conditions)):
        if energies_gev is not None:
            energies = _check_energies(energies_gev)
            energy = energies[int(rng.integers(len(energies)))]
        else:
            lo, hi = _check_energy_range(energy_range)
            energy = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        particle = species[int(rng.integers(len(species)))]
        material = geometry.materials[int(rng.integers(len(geometry.materials)))]
        mat, _ = geometry.effective(material)
        depth = float(rng.uniform(*geometry.depth_x0_range)) * mat.radiation_length_cm
        r_max = float(rng.uniform(*geometry.r_max_moliere_range)) * mat.moliere_radius_cm
        out.append(ShowerCondition(particle, energy, material, depth, r_max))
    return out


def grid_shower_conditions(
    geometry: ShowerGeometry,
    energies_gev: Sequence[float],
    *,
    particles: Sequence[str] | str = ("gamma", "e-"),
    size_points: int = 1,
) -> list[ShowerCondition]:
    """Every combination of energy, particle and material, with ``size_points`` evenly spaced
    values of the depth and of the radial extent over the geometry's ranges (1: their middle)."""
    if isinstance(size_points, bool) or not isinstance(size_points, (int, np.integer)) or not 1 <= size_points <= 100:
        raise ConfigError("size_points", f"must be a whole number in [1, 100], got {size_points!r}")
    energies = _check_energies(energies_gev)
    species = parse_particles(particles)

    def points(lo: float, hi: float) -> np.ndarray:
        return np.array([0.5 * (lo + hi)]) if size_points == 1 else np.linspace(lo, hi, size_points)

    out = []
    for material in geometry.materials:
        mat, _ = geometry.effective(material)
        for depth_x0 in points(*geometry.depth_x0_range):
            for r_m in points(*geometry.r_max_moliere_range):
                for particle in species:
                    for energy in energies:
                        out.append(ShowerCondition(particle, energy, material, float(depth_x0) * mat.radiation_length_cm,
                                                   float(r_m) * mat.moliere_radius_cm))
    return out


# -- simulation ---------------------------------------------------------------------------------
def _simulator_for(geometry: ShowerGeometry, grid: VoxelGrid, simulator: Simulator | None, cells_per_slice: int = 1) -> Simulator:
    """The simulator recording on ``geometry.simulation_grid(grid, cells_per_slice)``: the built-in one by
    default. A `CellSampling` geometry records on a grid that depends on the condition (its layer
    edges): a given simulator is then copied with that grid as its ``voxels``."""
    sim_grid = geometry.simulation_grid(grid, cells_per_slice)
    if simulator is None:
        from detopt.simulation.fastsim import FastShowerSimulator

        return FastShowerSimulator(voxels=sim_grid)
    if not isinstance(simulator, Simulator):
        raise ConfigError("simulator", f"must follow the Simulator protocol (a simulate method), got {type(simulator).__name__}")
    voxels = getattr(simulator, "voxels", None)
    if isinstance(geometry.sampling, CellSampling) and hasattr(simulator, "voxels") and voxels != sim_grid:
        import copy

        per_condition = copy.copy(simulator)
        per_condition.voxels = sim_grid  # type: ignore[attr-defined]
        return per_condition
    if voxels != sim_grid:
        raise ConfigError(
            "simulator.voxels",
            f"must record maps on {sim_grid.model_dump()} for geometry {geometry.name!r} "
            f"(ShowerGeometry.simulation_grid(grid)), got {voxels!r}",
        )
    return simulator


def _maps_of(geometry: ShowerGeometry, grid: VoxelGrid, voxels: np.ndarray | None, cells_per_slice: int = 1) -> np.ndarray:
    """Reduce the simulator's maps to ``grid``: the active slice(s) of each cell for a sampling
    geometry, summed over the ``cells_per_slice`` cells of a map slice for a `CellSampling` one."""
    if voxels is None:
        raise DataError("simulator returned no voxel maps; give it voxels=ShowerGeometry.simulation_grid(grid)")
    n = voxels.shape[0]
    if geometry.sampling is None:
        maps = voxels
    elif isinstance(geometry.sampling, CellSampling):
        cell = geometry.sampling.cell
        active = [j for j, layer in enumerate(cell) if layer.active]
        if voxels.shape[1] != grid.n_depth * cells_per_slice * len(cell):
            raise DataError(f"simulator maps have {voxels.shape[1]} depth slices, expected one per layer "
                            f"({grid.n_depth * cells_per_slice * len(cell)})")
        per_layer = voxels.reshape(n, grid.n_depth, cells_per_slice, len(cell), voxels.shape[2])
        maps = per_layer[:, :, :, active, :].sum(axis=(2, 3))
    else:
        a, b = geometry.sampling.absorber_units, geometry.sampling.active_units
        maps = voxels.reshape(n, grid.n_depth, a + b, voxels.shape[2])[:, :, a:, :].sum(axis=2)
    if maps.shape[1:] != (grid.n_depth, grid.n_radial):
        raise DataError(f"simulator maps have shape {maps.shape[1:]}, expected ({grid.n_depth}, {grid.n_radial})")
    return np.ascontiguousarray(maps, dtype=np.float32)


def simulate_condition(
    geometry: ShowerGeometry,
    condition: ShowerCondition,
    n_showers: int,
    grid: VoxelGrid,
    seed: int,
    simulator: Simulator | None = None,
) -> np.ndarray:
    """Maps ``(n_showers, n_depth, n_radial)`` (GeV, float32) of one condition, from ``seed``.

    The same seed at a neighbouring design draws the same random numbers in the built-in
    simulator (common random numbers; see `detopt.evaluation.gradients`). A `CellSampling`
    geometry builds whole cells (`ShowerGeometry.built_depth_cm`), so its maps change with the
    depth only in steps of ``n_depth`` cells.
    """
    k = geometry.cells_per_slice(condition.depth_cm, grid.n_depth)
    sim = _simulator_for(geometry, grid, simulator, k)
    det = geometry.detector(condition.material, condition.depth_cm, condition.r_max_cm, n_cells=grid.n_depth * k)
    e = float(condition.energy_gev)
    batch = sim.simulate(det, int(n_showers), [condition.particle], (e, e), int(seed))
    return _maps_of(geometry, grid, batch.voxels, k)


def generate_shower_dataset(
    geometry: ShowerGeometry | str,
    *,
    energies_gev: Sequence[float] | None = None,
    energy_range: tuple[float, float] | None = None,
    particles: Sequence[str] | str = ("gamma", "e-"),
    n_conditions: int | None = None,
    size_points: int = 1,
    conditions: Sequence[ShowerCondition] | None = None,
    showers_per_condition: int = 100,
    grid: VoxelGrid | None = None,
    seed: int = 0,
    simulator: Simulator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ShowerDataset:
    """Simulate a data set of ``showers_per_condition`` maps for each of a set of conditions
    (``progress(done, total)`` after each condition).

    The conditions are, in order of precedence: ``conditions`` as given; ``n_conditions`` random
    draws (`draw_shower_conditions`: energies log-uniform in ``energy_range``, default 1-100 GeV, or
    drawn from ``energies_gev``); or the full grid over ``energies_gev`` x particles x materials
    (`grid_shower_conditions`, ``size_points`` depths and radii). Each condition is simulated with
    its own seed, spawned from ``seed`` and recorded in the metadata with the condition. The depth
    recorded is that of the calorimeter built (`ShowerGeometry.built_depth_cm`: whole cells for a
    `CellSampling` geometry, the condition's own depth otherwise).
    """
    geometry = get_geometry(geometry)
    grid = VoxelGrid() if grid is None else grid
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed", f"must be a whole number >= 0, got {seed!r}")
    if (isinstance(showers_per_condition, bool) or not isinstance(showers_per_condition, (int, np.integer))
            or showers_per_condition <= 0):
        raise ConfigError("showers_per_condition", f"must be a whole number > 0, got {showers_per_condition!r}")
    draw_seq, sim_seq = np.random.SeedSequence(int(seed)).spawn(2)
    if conditions is not None:
        conds = list(conditions)
        if not conds:
            raise ConfigError("conditions", "at least one condition is needed")
    elif n_conditions is not None:
        conds = draw_shower_conditions(
            geometry, n_conditions, np.random.default_rng(draw_seq), particles=particles,
            energy_range=(1.0, 100.0) if energy_range is None else energy_range, energies_gev=energies_gev,
        )
    elif energies_gev is not None:
        conds = grid_shower_conditions(geometry, energies_gev, particles=particles, size_points=size_points)
    else:
        raise ConfigError("n_conditions", "give n_conditions (random draw), energies_gev (grid) or conditions")
    conds = [replace(c, depth_cm=geometry.built_depth_cm(c.depth_cm, grid.n_depth)) for c in conds]
    sim = _simulator_for(geometry, grid, simulator)
    seeds = [int(s.generate_state(1, dtype=np.uint32)[0] % (2**31 - 1)) for s in sim_seq.spawn(len(conds))]
    maps = np.empty((len(conds) * showers_per_condition, grid.n_depth, grid.n_radial), dtype=np.float32)
    vectors = np.empty((len(conds), len(SHOWER_CONDITIONS)))
    for k, (cond, s) in enumerate(zip(conds, seeds)):
        rows = slice(k * showers_per_condition, (k + 1) * showers_per_condition)
        maps[rows] = simulate_condition(geometry, cond, showers_per_condition, grid, s, sim)
        vectors[k] = condition_vector(geometry, cond)
        if progress is not None:
            progress(k + 1, len(conds))
    metadata = {
        "format": _FORMAT,
        "seed": int(seed),
        "simulator": getattr(sim, "name", type(sim).__name__),
        "geometry": geometry.model_dump(mode="json"),
        "grid": grid.model_dump(mode="json"),
        "radial_power": grid.radial_power,
        "showers_per_condition": int(showers_per_condition),
        "conditions": [{**c.as_dict(), "seed": s} for c, s in zip(conds, seeds)],
    }
    return ShowerDataset(maps, np.repeat(vectors, showers_per_condition, axis=0), SHOWER_CONDITIONS, metadata)


# -- the data set -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShowerDataset:
    """Energy maps and their conditions.

    ``maps (n, n_depth, n_radial)`` float32 GeV per voxel; ``conditions (n, n_cond)`` float64 in the
    units of their names ``condition_names`` (`SHOWER_CONDITIONS` for generated sets);
    ``metadata`` says how the set was made (seed, simulator, geometry, grid, the list of
    conditions and their seeds) and is kept unchanged by `select`: it is provenance, not per row.
    The depth slices are equal and span ``depth_cm``; ring k spans
    r_max ((k-1)/n_radial)^p .. r_max (k/n_radial)^p with p = ``metadata["radial_power"]``.
    """

    maps: np.ndarray
    conditions: np.ndarray
    condition_names: tuple[str, ...] = SHOWER_CONDITIONS
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        maps, conds = self.maps, self.conditions
        if not isinstance(maps, np.ndarray) or maps.ndim != 3:
            raise DataError(f"maps: expected an array of shape (n, n_depth, n_radial), got {getattr(maps, 'shape', maps)!r}")
        if not isinstance(conds, np.ndarray) or conds.shape != (maps.shape[0], len(self.condition_names)):
            raise DataError(
                f"conditions: expected shape ({maps.shape[0]}, {len(self.condition_names)}) "
                f"(n, len(condition_names)), got {getattr(conds, 'shape', conds)!r}"
            )
        if len(set(self.condition_names)) != len(self.condition_names):
            raise DataError(f"condition_names: duplicate names in {list(self.condition_names)}")
        for needed in ("depth_cm", "r_max_cm"):
            if needed not in self.condition_names:
                raise DataError(f"condition_names: needs a {needed!r} column (for the voxel edges)")
        object.__setattr__(self, "condition_names", tuple(self.condition_names))

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    @property
    def n_depth(self) -> int:
        return int(self.maps.shape[1])

    @property
    def n_radial(self) -> int:
        return int(self.maps.shape[2])

    @property
    def radial_power(self) -> float:
        return float(self.metadata.get("radial_power", 2.0))

    def column(self, name: str) -> np.ndarray:
        """One condition column, ``(n,)``."""
        if name not in self.condition_names:
            raise DataError(f"no condition column {name!r}; have {list(self.condition_names)}")
        return self.conditions[:, self.condition_names.index(name)]

    def depth_edges_cm(self) -> np.ndarray:
        """Depth-slice edges per shower, ``(n, n_depth + 1)`` cm from the front face."""
        return self.column("depth_cm")[:, None] * np.linspace(0.0, 1.0, self.n_depth + 1)[None, :]

    def radial_edges_cm(self) -> np.ndarray:
        """Ring edges per shower, ``(n, n_radial + 1)`` cm from the axis."""
        frac = (np.arange(self.n_radial + 1) / self.n_radial) ** self.radial_power
        return self.column("r_max_cm")[:, None] * frac[None, :]

    def condition_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(unique condition rows ``(m, n_cond)``, index of each shower's row ``(n,)``)."""
        uniq, inverse = np.unique(self.conditions, axis=0, return_inverse=True)
        return uniq, inverse.reshape(-1)

    def select(self, mask: np.ndarray) -> ShowerDataset:
        """The showers where ``mask`` (boolean or index array) is set."""
        return replace(self, maps=self.maps[mask], conditions=self.conditions[mask])

    @staticmethod
    def concatenate(datasets: Sequence[ShowerDataset]) -> ShowerDataset:
        """Join data sets with the same grid and condition columns (metadata of the first, with the
        list of conditions of all)."""
        if not datasets:
            raise DataError("concatenate: no data sets given")
        first = datasets[0]
        for d in datasets[1:]:
            if d.condition_names != first.condition_names:
                raise DataError("concatenate: data sets have different condition columns")
            if d.maps.shape[1:] != first.maps.shape[1:] or d.radial_power != first.radial_power:
                raise DataError(f"concatenate: map grids differ ({d.maps.shape[1:]} vs {first.maps.shape[1:]})")
        meta = dict(first.metadata)
        meta["conditions"] = [c for d in datasets for c in d.metadata.get("conditions", [])]
        return ShowerDataset(
            np.concatenate([d.maps for d in datasets]), np.concatenate([d.conditions for d in datasets]),
            first.condition_names, meta,
        )

    def split_by_condition(
        self, test_fraction: float = 0.2, seed: int = 0, held_out: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[ShowerDataset, ShowerDataset]:
        """(train, test) with whole conditions held out, never single showers of a condition.

        ``held_out``: a boolean mask over the unique conditions (`condition_ids`), or a function
        of the unique condition rows returning it; otherwise a random ``test_fraction`` of the
        conditions (at least one each side when there are two or more), drawn from ``seed``.
        """
        uniq, inverse = self.condition_ids()
        m = uniq.shape[0]
        if held_out is not None:
            mask = np.asarray(held_out(uniq) if callable(held_out) else held_out, dtype=bool)
            if mask.shape != (m,):
                raise DataError(f"held_out: expected a mask of shape ({m},) over the unique conditions, got {mask.shape}")
        else:
            if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
                raise ConfigError("test_fraction", f"must be in (0, 1), got {test_fraction!r}")
            n_test = int(round(test_fraction * m))
            if m >= 2:
                n_test = min(max(n_test, 1), m - 1)
            mask = np.zeros(m, dtype=bool)
            mask[np.random.default_rng(seed).permutation(m)[:n_test]] = True
        test = mask[inverse]
        return self.select(~test), self.select(test)

    def subsample(self, fraction: float, seed: int = 0, by: str = "showers") -> ShowerDataset:
        """A random ``fraction`` of the data, drawn from ``seed``: ``by="showers"`` keeps that share of the
        showers of every condition (at least one each); ``by="conditions"`` keeps that share of the
        conditions (at least one) with all their showers, as when a new geometry is simulated at a few
        points only."""
        if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
            raise ConfigError("fraction", f"must be in (0, 1], got {fraction!r}")
        if by not in SUBSAMPLE_BY:
            raise ConfigError("by", f"must be {' or '.join(SUBSAMPLE_BY)}, got {by!r}")
        rng = np.random.default_rng(seed)
        rows, inverse = self.condition_ids()
        if by == "conditions":
            chosen = rng.choice(len(rows), size=min(len(rows), max(1, round(fraction * len(rows)))), replace=False)
            return self.select(np.flatnonzero(np.isin(inverse, chosen)))
        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(inverse))[:-1]) if len(self) else []
        keep = [rng.choice(idx, size=max(1, int(round(fraction * idx.size))), replace=False) for idx in groups]
        return self.select(np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=int))

    # -- Parquet ---------------------------------------------------------------------------
    def to_parquet(self, path: str | Path) -> Path:
        """Write atomically: one float64 column per condition, the maps as a fixed-size list of
        float32 (``n_depth * n_radial``, row-major) and the shape, names and provenance as JSON
        in the file metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        n, nd, nr = self.maps.shape
        cols: dict[str, Any] = {name: pa.array(self.conditions[:, i], pa.float64()) for i, name in enumerate(self.condition_names)}
        flat = pa.array(np.ascontiguousarray(self.maps, dtype=np.float32).reshape(n * nd * nr), pa.float32())
        cols[_MAP_COLUMN] = pa.FixedSizeListArray.from_arrays(flat, nd * nr)
        meta = {"format": _FORMAT, "map_shape": [nd, nr], "condition_names": list(self.condition_names),
                "metadata": dict(self.metadata)}
        table = pa.table(cols).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
        path = Path(path)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    @classmethod
    def from_parquet(cls, path: str | Path) -> ShowerDataset:
        """Read a file written by `to_parquet`; a missing file, column or a wrong shape is a `DataError`."""
        import pyarrow as pa

        path = Path(path)
        table, raw = read_parquet(path, _META_KEY)
        if raw is None:
            raise DataError(f"{path}: not a detopt shower data set (no '{_META_KEY.decode()}' metadata)")
        try:
            meta = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise DataError(f"{path}: the '{_META_KEY.decode()}' metadata is not valid JSON") from None
        if not isinstance(meta, dict):
            raise DataError(f"{path}: the '{_META_KEY.decode()}' metadata must be a JSON object")
        names = tuple(meta.get("condition_names", ()))
        shape = meta.get("map_shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) and s > 0 for s in shape)):
            raise DataError(f"{path}: metadata map_shape must be [n_depth, n_radial], got {shape!r}")
        missing = [c for c in (*names, _MAP_COLUMN) if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; found {table.column_names}")
        col = table.column(_MAP_COLUMN).combine_chunks() if table.num_rows else None
        nd, nr = shape
        if col is not None:
            if not pa.types.is_fixed_size_list(col.type) or col.type.list_size != nd * nr:
                raise DataError(f"{path}: column {_MAP_COLUMN!r} must be fixed-size lists of {nd * nr} "
                                f"(n_depth x n_radial = {nd} x {nr}) floats, got {col.type}")
            maps = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(table.num_rows, nd, nr)
        else:
            maps = np.zeros((0, nd, nr), dtype=np.float32)
        conds = (np.stack([table.column(c).to_numpy().astype(np.float64) for c in names], axis=1)
                 if names else np.zeros((table.num_rows, 0)))
        return cls(maps, conds, names, meta.get("metadata", {}))
