"""`VoxelGrid`: depth slices x radial rings in which the simulator records energy maps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator


class VoxelGrid(BaseModel):
    """Depth slices over the whole calorimeter and radial rings around the beam axis.

    The depth slices are equal unless ``depth_fractions`` gives their ``n_depth + 1`` edges as
    fractions of the depth (0, increasing, 1): a sampling geometry with layers of unequal
    thickness is recorded on slices that fall on its layer edges (see
    `detopt.simulation.shower_dataset.ShowerGeometry.simulation_grid`).
    Ring edges are r_max (k / n_radial)^radial_power, fine near the axis where EM showers are
    narrow (CaloChallenge-like). ``r_max_cm`` defaults to the radius of the circle with the
    area of the calorimeter face, so that the map holds all the energy of the layers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    n_depth: int = Field(default=24, ge=1, le=100_000)
    n_radial: int = Field(default=16, ge=1, le=1000)
    r_max_cm: float | None = Field(default=None, gt=0)
    radial_power: float = Field(default=2.0, ge=1.0, le=4.0)
    depth_fractions: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _check_fractions(self) -> "VoxelGrid":
        f = self.depth_fractions
        if f is None:
            if self.n_depth > 1000:
                raise ValueError(f"n_depth must be at most 1000 for equal slices, got {self.n_depth}")
            return self
        ok = (len(f) == self.n_depth + 1 and f[0] == 0.0 and f[-1] == 1.0 and all(math.isfinite(x) for x in f)
              and all(b > a for a, b in zip(f, f[1:])))
        if not ok:
            raise ValueError(f"depth_fractions must be n_depth + 1 = {self.n_depth + 1} increasing numbers from 0 to 1")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Equal slices dump as before ``depth_fractions`` existed (the provenance of old data sets)."""
        out: dict[str, Any] = handler(self)
        if out.get("depth_fractions", 0) is None:
            del out["depth_fractions"]
        return out

    def radial_edges_cm(self, transverse_size_cm: float) -> np.ndarray:
        r_max = self.r_max_cm if self.r_max_cm is not None else equivalent_radius_cm(transverse_size_cm)
        return r_max * (np.arange(self.n_radial + 1) / self.n_radial) ** self.radial_power

    def depth_edges_cm(self, depth_cm: float) -> np.ndarray:
        if self.depth_fractions is not None:
            return depth_cm * np.asarray(self.depth_fractions, dtype=float)
        return np.linspace(0.0, depth_cm, self.n_depth + 1)


def equivalent_radius_cm(transverse_size_cm: float) -> float:
    """Radius of the circle with the area of a square face of side ``transverse_size_cm``."""
    return float(transverse_size_cm / np.sqrt(np.pi))
