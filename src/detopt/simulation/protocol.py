"""The `Simulator` protocol: anything that turns a detector and a beam into events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from detopt.detector.calorimeter import SamplingCalorimeter
from detopt.simulation.events import EventBatch


@runtime_checkable
class Simulator(Protocol):
    """Simulates ``n_events`` single particles, each drawn uniformly from ``particles`` with an
    energy uniform in ``energy_range`` (GeV), entering ``detector`` at normal incidence.
    The same ``seed`` gives the same events; different seeds give independent events."""

    def simulate(
        self,
        detector: SamplingCalorimeter,
        n_events: int,
        particles: Sequence[str],
        energy_range: tuple[float, float],
        seed: int,
    ) -> EventBatch: ...
