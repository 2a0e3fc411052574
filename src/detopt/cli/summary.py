"""Numbers of the ``detopt simulate`` summary: per-layer deposits and per-particle containment.

Plain numpy on an :class:`~detopt.simulation.EventBatch`; the rich tables are drawn in
:mod:`detopt.cli.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from detopt.detector import SamplingCalorimeter
    from detopt.simulation import EventBatch

__all__ = ["LayerSummary", "ParticleSummary", "summarize_layers", "summarize_particles"]


@dataclass(frozen=True)
class LayerSummary:
    """Deposited energy of one layer over all events (GeV)."""

    name: str
    material: str
    thickness_cm: float
    active: bool
    mean_gev: float
    rms_gev: float
    """Standard deviation over events (ROOT's "RMS" of a histogram)."""


@dataclass(frozen=True)
class ParticleSummary:
    """Energy bookkeeping of one particle species, means over its events.

    ``containment`` = <E_dep / E> (E_dep summed over all layers), ``active_fraction`` =
    <E_active / E_dep> (the sampling fraction), ``active_over_energy`` = <E_active / E> (what
    the read-out sees), ``active_resolution`` = RMS / mean of E_active / E.
    """

    particle: str
    n_events: int
    containment: float
    active_fraction: float
    active_over_energy: float
    active_resolution: float


def summarize_layers(batch: EventBatch, detector: SamplingCalorimeter) -> list[LayerSummary]:
    """One row per layer, front to back."""
    deposits = np.asarray(batch.deposits, dtype=np.float64)
    mean = deposits.mean(axis=0)
    rms = deposits.std(axis=0)
    return [
        LayerSummary(layer.name, layer.material.name, layer.thickness_cm, layer.active, float(m), float(s))
        for layer, m, s in zip(detector.layers, mean, rms, strict=True)
    ]


def summarize_particles(batch: EventBatch) -> list[ParticleSummary]:
    """One row per particle species present in ``batch``, in code order (gamma, e-, pi+)."""
    total = np.asarray(batch.total_deposit, dtype=np.float64)
    active = np.asarray(batch.active_deposits, dtype=np.float64).sum(axis=1)
    energy = np.asarray(batch.energy, dtype=np.float64)
    names = batch.particle_names
    rows = []
    for code in np.unique(batch.particle):
        sel = batch.particle == code
        seen = sel & (total > 0)
        visible = active[sel] / energy[sel]
        mean_visible = float(visible.mean())
        rows.append(
            ParticleSummary(
                particle=str(names[np.flatnonzero(sel)[0]]),
                n_events=int(sel.sum()),
                containment=float((total[sel] / energy[sel]).mean()),
                active_fraction=float((active[seen] / total[seen]).mean()) if seen.any() else float("nan"),
                active_over_energy=mean_visible,
                active_resolution=float(visible.std() / mean_visible) if mean_visible > 0 else float("nan"),
            )
        )
    return rows
