"""Geometry of a longitudinally segmented sampling calorimeter, built from a design."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detopt.detector.materials import Material, get_material
from detopt.errors import ConfigError


@dataclass(frozen=True)
class Layer:
    """One slab, perpendicular to the beam: ``thickness_cm`` of ``material``; ``active`` if read out."""

    name: str
    material: Material
    thickness_cm: float
    active: bool

    def __post_init__(self) -> None:
        t = self.thickness_cm
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise ConfigError(f"layers[{self.name}].thickness_cm", f"must be a finite number > 0 cm, got {t!r}")


@dataclass(frozen=True)
class SamplingCalorimeter:
    """Ordered layers along the beam (the beam enters the first layer) with a square transverse face."""

    layers: tuple[Layer, ...]
    transverse_size_cm: float = 50.0

    def __post_init__(self) -> None:
        if len(self.layers) == 0:
            raise ConfigError("layers", "a calorimeter needs at least one layer")
        names = [layer.name for layer in self.layers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError("layers", f"duplicate layer names: {', '.join(dupes)}")
        s = self.transverse_size_cm
        if not (math.isfinite(s) and s > 0):
            raise ConfigError("transverse_size_cm", f"must be a finite number > 0 cm, got {s!r}")

    @classmethod
    def from_layers(
        cls, layers: "Sequence[tuple[str, float, bool]]", transverse_size_cm: float = 50.0
    ) -> "SamplingCalorimeter":
        """Quick construction from (material name, thickness_cm, active) triples; layers named l0, l1, ..."""
        return cls(
            tuple(Layer(f"l{i}", get_material(m), float(t), bool(a)) for i, (m, t, a) in enumerate(layers)),
            transverse_size_cm,
        )

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def active_mask(self) -> np.ndarray:
        return np.array([layer.active for layer in self.layers], dtype=bool)

    @property
    def thicknesses_cm(self) -> np.ndarray:
        return np.array([layer.thickness_cm for layer in self.layers], dtype=float)

    @property
    def depth_cm(self) -> float:
        return float(self.thicknesses_cm.sum())

    @property
    def boundaries_cm(self) -> np.ndarray:
        """Layer edges along the beam, ``n_layers + 1`` values starting at 0."""
        return np.concatenate([[0.0], np.cumsum(self.thicknesses_cm)])

    @property
    def radiation_lengths(self) -> float:
        """Total depth in radiation lengths X0."""
        return float(sum(layer.thickness_cm / layer.material.radiation_length_cm for layer in self.layers))

    @property
    def pion_interaction_lengths(self) -> float:
        """Total depth in pion interaction lengths; exp(-this) is the pion punch-through probability."""
        return float(sum(layer.thickness_cm / layer.material.pion_interaction_length_cm for layer in self.layers))

    def describe(self) -> dict[str, object]:
        """A JSON-able description (layer names, materials, thicknesses, active flags)."""
        return {
            "transverse_size_cm": self.transverse_size_cm,
            "layers": [
                {"name": layer.name, "material": layer.material.name, "thickness_cm": layer.thickness_cm,
                 "active": layer.active}
                for layer in self.layers
            ],
        }


class LayerSpec(BaseModel):
    """A layer of a layout. Thickness and material may be fixed here or come from the design as
    parameters named ``<name>_thickness`` (cm) and ``<name>_material`` (a category)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    active: bool
    material: str | None = None
    thickness_cm: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class CalorimeterLayout(BaseModel):
    """How a design becomes a `SamplingCalorimeter`: layer order, readout, transverse size."""

    model_config = ConfigDict(extra="forbid")
    layers: list[LayerSpec] = Field(min_length=1)
    transverse_size_cm: float = Field(default=50.0, gt=0, allow_inf_nan=False)

    @field_validator("layers")
    @classmethod
    def _unique_names(cls, layers: list[LayerSpec]) -> list[LayerSpec]:
        names = [layer.name for layer in layers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"duplicate layer names: {', '.join(repeated)}")
        return layers

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "CalorimeterLayout":
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = "detector." + ".".join(str(p) for p in err["loc"])
            raise ConfigError(loc, err["msg"].removeprefix("Value error, ")) from None

    def parameter_names(self) -> set[str]:
        """The design parameter names this layout reads."""
        return {f"{spec.name}_{kind}" for spec in self.layers for kind in ("thickness", "material")}

    def build(self, design: Mapping[str, float | str], materials: Mapping[str, Material] | None = None) -> SamplingCalorimeter:
        """Make the calorimeter of one concrete design (continuous values, chosen categories); ``materials``
        extends the built-in table."""
        layers = []
        for spec in self.layers:
            t_key, m_key = f"{spec.name}_thickness", f"{spec.name}_material"
            thickness = design.get(t_key, spec.thickness_cm)
            material = design.get(m_key, spec.material)
            if thickness is None:
                raise ConfigError(t_key, "no thickness: give the parameter in the design or thickness_cm in the layout")
            if material is None:
                raise ConfigError(m_key, "no material: give the parameter in the design or material in the layout")
            if isinstance(thickness, str):
                raise ConfigError(t_key, f"must be a number of cm, got {thickness!r}")
            try:
                mat = get_material(str(material), materials)
            except ConfigError as exc:
                raise ConfigError(m_key, exc.message) from None
            layers.append(Layer(spec.name, mat, float(thickness), spec.active))
        return SamplingCalorimeter(tuple(layers), self.transverse_size_cm)
