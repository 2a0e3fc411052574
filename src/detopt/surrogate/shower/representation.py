"""An exactly invertible representation of energy maps that keeps the absolute energy scale.

The public reference code of the shower-surrogate paper normalizes every image by its own
maximum, so the generated showers have no energy scale. Here a map ``E`` (``n x n_depth x
n_radial``, GeV per voxel) becomes one vector per shower,

    [ log(E_tot + e_floor),  log(E_ij / E_tot + f_floor) for every voxel ij ],

the log of the total deposit (which carries the scale and its resolution) jointly with the
log of the fraction of it in each voxel (which carries the shape). Decoding inverts both logs,
clips negative fractions to zero and renormalizes the fractions to sum to one, so a generated
shower has exactly the total energy its first component says. On real maps the round trip is
exact to float precision (the fractions already sum to one). Everything is written in torch
and differentiable, so gradients flow from an observable of the decoded maps back to the
conditioning of the generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from detopt.errors import ConfigError, DataError

#: Floor added to the voxel fractions before the log, dimensionless. Below the floor a voxel's code
#: is linear in its fraction, above it logarithmic. Too high a floor keeps the right-skewed,
#: heavy-tailed fractions of the sparse outer rings (a few particles, ~0.1% of the shower per voxel)
#: linear, and the diffusion generates their tails too short: outer-ring widths 0.6-0.8x, dispersion
#: width 14% off with 1e-2 on the Pb/scintillator geometry B. Too low a floor makes nearly empty
#: voxels steep in the code, and sampler noise there becomes spurious energy: widths 12-15% too
#: wide with 1e-4. 5e-4 is the measured best on geometries A and B at 12 x 8 voxels (docs/shower.md,
#: "Widths per condition"); a saved model keeps the floor it was trained with.
FRACTION_FLOOR: float = 5e-4

#: Floor added to the total deposit before the log, GeV: 1 keV, far below any beam energy the
#: surrogate is trained on (>= 0.1 GeV), only there so that an empty map has a finite code.
ENERGY_FLOOR_GEV: float = 1e-6


def check_maps(maps: Any, n_depth: int, n_radial: int, field: str = "maps") -> torch.Tensor:
    """``maps`` as a floating torch tensor ``n x n_depth x n_radial``; ``DataError`` naming the mismatch."""
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(np.ascontiguousarray(maps))
    if not isinstance(maps, torch.Tensor):
        raise DataError(f"{field}: expected an array of shape (n, {n_depth}, {n_radial}), got {type(maps).__name__}")
    if not maps.dtype.is_floating_point:
        maps = maps.to(torch.float64)
    if maps.ndim != 3 or tuple(maps.shape[1:]) != (n_depth, n_radial):
        raise DataError(
            f"{field}: expected shape (n, {n_depth}, {n_radial}) (n showers x n_depth x n_radial) "
            f"as the model was built for, got {tuple(maps.shape)}"
        )
    if not torch.isfinite(maps).all():
        raise DataError(f"{field}: contains NaN or inf")
    if (maps < 0).any():
        raise DataError(f"{field}: deposited energies must be >= 0 GeV, minimum is {float(maps.min()):.3g}")
    return maps


@dataclass(frozen=True)
class ShowerRepresentation:
    """Map ``n x n_depth x n_radial`` (GeV) <-> code ``n x (1 + n_depth * n_radial)`` (see the module docstring)."""

    n_depth: int
    n_radial: int
    fraction_floor: float = FRACTION_FLOOR
    energy_floor_gev: float = ENERGY_FLOOR_GEV

    def __post_init__(self) -> None:
        for name in ("n_depth", "n_radial"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise ConfigError(name, f"must be an integer in [1, 1000], got {value!r}")
        for name in ("fraction_floor", "energy_floor_gev"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 < value < 1.0:
                raise ConfigError(name, f"must be a number in (0, 1), got {value!r}")

    @property
    def n_voxels(self) -> int:
        return self.n_depth * self.n_radial

    @property
    def code_dim(self) -> int:
        """Length of a shower's code: the log total energy plus one entry per voxel."""
        return 1 + self.n_voxels

    def to_config(self) -> dict[str, Any]:
        return {
            "n_depth": self.n_depth,
            "n_radial": self.n_radial,
            "fraction_floor": self.fraction_floor,
            "energy_floor_gev": self.energy_floor_gev,
        }

    def encode(self, maps: Any) -> torch.Tensor:
        """Maps (GeV, ``n x n_depth x n_radial``, numpy or torch) -> codes ``n x code_dim``, float64."""
        maps = check_maps(maps, self.n_depth, self.n_radial).to(torch.float64)
        flat = maps.reshape(maps.shape[0], self.n_voxels)
        total = flat.sum(dim=1, keepdim=True)
        fractions = flat / total.clamp_min(torch.finfo(torch.float64).tiny)
        return torch.cat([torch.log(total + self.energy_floor_gev), torch.log(fractions + self.fraction_floor)], dim=1)

    def decode(
        self, codes: torch.Tensor, fluctuate: "Callable[[torch.Tensor], torch.Tensor] | None" = None
    ) -> torch.Tensor:
        """Codes ``n x code_dim`` -> maps ``n x n_depth x n_radial`` in GeV, in the codes' dtype.

        Exact inverse of ``encode`` on its image; for generated codes the fractions are clipped
        at 0 and renormalized, so every map's total is exp(code[0]) - energy_floor (>= 0).
        ``fluctuate`` maps the clipped fractions to fluctuated ones before that renormalization.
        Differentiable in ``codes``.
        """
        if not isinstance(codes, torch.Tensor) or codes.ndim != 2 or codes.shape[1] != self.code_dim:
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise DataError(f"codes: expected shape (n, {self.code_dim}) (1 + n_depth * n_radial), got {got}")
        total = (torch.exp(codes[:, :1]) - self.energy_floor_gev).clamp_min(0.0)
        fractions = (torch.exp(codes[:, 1:]) - self.fraction_floor).clamp_min(0.0)
        if fluctuate is not None:
            fractions = fluctuate(fractions)
        norm = fractions.sum(dim=1, keepdim=True).clamp_min(torch.finfo(codes.dtype).tiny)
        return (total * fractions / norm).reshape(codes.shape[0], self.n_depth, self.n_radial)
