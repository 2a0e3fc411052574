"""`VoxelGrid`: depth slices x radial rings in which the simulator records energy maps."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class VoxelGrid(BaseModel):
    """Equal depth slices over the whole calorimeter and radial rings around the beam axis.

    Ring edges are r_max (k / n_radial)^radial_power, fine near the axis where EM showers are
    narrow (CaloChallenge-like). ``r_max_cm`` defaults to the radius of the circle with the
    area of the calorimeter face, so that the map holds all the energy of the layers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    n_depth: int = Field(default=24, ge=1, le=1000)
    n_radial: int = Field(default=16, ge=1, le=1000)
    r_max_cm: float | None = Field(default=None, gt=0)
    radial_power: float = Field(default=2.0, ge=1.0, le=4.0)

    def radial_edges_cm(self, transverse_size_cm: float) -> np.ndarray:
        r_max = self.r_max_cm if self.r_max_cm is not None else equivalent_radius_cm(transverse_size_cm)
        return r_max * (np.arange(self.n_radial + 1) / self.n_radial) ** self.radial_power

    def depth_edges_cm(self, depth_cm: float) -> np.ndarray:
        return np.linspace(0.0, depth_cm, self.n_depth + 1)


def equivalent_radius_cm(transverse_size_cm: float) -> float:
    """Radius of the circle with the area of a square face of side ``transverse_size_cm``."""
    return float(transverse_size_cm / np.sqrt(np.pi))
