"""The small interfaces through which a user's problem plugs into the SRSO loop.

- a **simulation** is any picklable callable ``simulate(design, n_events, seed) -> Events``
  (``design``: parameter name -> value or category), run on the executor's workers;
- a **reconstruction** is any object with ``fit(design, events, seed, warm) -> dict``,
  ``predict(design, events) -> n x n_targets``, ``save(dir)`` and ``load(dir)``; ``design`` is
  the ``n x encoding_size`` encoding of the design of every event;
- the **per-event loss** ``loss_fn(T_reco, T_true)`` compares reconstructed and true targets
  (default: AIDO eq. 10);
- **penalties** are ``(callable, weight)`` pairs of functions of the design tensor
  (:mod:`detopt.optimize.penalties`).

The built-in calorimeter problem (:class:`CalorimeterSimulation`, :class:`NetworkReconstruction`)
is one implementation; the tests use a quadratic bowl with the same interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from detopt.design import DesignSpace
from detopt.errors import DataError
from detopt.optimize.penalties import WeightedPenalty

__all__ = [
    "CalorimeterSimulation",
    "Events",
    "FunctionReconstruction",
    "IdentityReconstruction",
    "Monitor",
    "NetworkReconstruction",
    "Problem",
    "ReconstructionStep",
    "SimulationFn",
]


@dataclass(frozen=True)
class Events:
    """Per-event arrays of one or more designs: ``features`` n x F (what the reconstruction reads),
    ``context`` n x C (known per event, e.g. the particle one-hot), ``target`` n x T (the truth)."""

    features: np.ndarray
    context: np.ndarray
    target: np.ndarray

    def __post_init__(self) -> None:
        n = self.target.shape[0] if self.target.ndim == 2 else -1
        for name in ("features", "context", "target"):
            value = getattr(self, name)
            if value.ndim != 2 or value.shape[0] != n:
                raise DataError(f"Events.{name}: expected a 2-d array with one row per event (n = {n}), got {value.shape}")

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def select(self, index: np.ndarray) -> Events:
        return Events(self.features[index], self.context[index], self.target[index])

    @staticmethod
    def concatenate(parts: Sequence[Events]) -> Events:
        if not parts:
            raise DataError("Events.concatenate: nothing to join")
        return Events(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.context for p in parts]),
            np.concatenate([p.target for p in parts]),
        )


class SimulationFn(Protocol):
    """Picklable: ``(design, n_events, seed) -> Events``; the same seed gives the same events."""

    def __call__(self, design: Mapping[str, float | str], n_events: int, seed: int) -> Events: ...


class ReconstructionStep(Protocol):
    """Trained each iteration on all designs together; ``load`` restores what ``save`` wrote (warm start)."""

    def fit(self, design: np.ndarray, events: Events, seed: int, warm: bool) -> dict[str, Any]: ...

    def predict(self, design: np.ndarray, events: Events) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...


PerEventLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Monitor:
    """A quantity of the design recorded each iteration (and plotted), e.g. cost against its limit."""

    function: Callable[[torch.Tensor], torch.Tensor]
    limit: float | None = None
    unit: str = ""


def _default_loss(t_reco: torch.Tensor, t_true: torch.Tensor) -> torch.Tensor:
    from detopt.reconstruction.loss import energy_resolution_loss

    return energy_resolution_loss(t_reco, t_true, reduction="none")


@dataclass
class Problem:
    """Everything problem-specific the loop needs: start design, simulation, reconstruction, goal, penalties."""

    space: DesignSpace
    simulate: SimulationFn
    reconstruction: ReconstructionStep
    penalties: list[WeightedPenalty] = field(default_factory=list)
    loss_fn: PerEventLoss = _default_loss
    monitors: dict[str, Monitor] = field(default_factory=dict)
    describe: Callable[[Mapping[str, float | str]], Any] | None = None


# ---------------------------------------------------------------------------- calorimeter
@dataclass(frozen=True)
class CalorimeterSimulation:
    """The AIDO example: build the calorimeter of a design and simulate single particles.

    Features: deposited energy per active layer (GeV); context: particle one-hot over
    ``particles``; target: the true energy (GeV), one column.
    """

    layout: Any  # detopt.detector.CalorimeterLayout
    particles: tuple[str, ...] = ("gamma", "pi+")
    energy_range: tuple[float, float] = (1.0, 20.0)
    simulator: Any = None  # default FastShowerSimulator()
    materials: Mapping[str, Any] | None = None  # user materials extending the built-in table

    def __call__(self, design: Mapping[str, float | str], n_events: int, seed: int) -> Events:
        from detopt.simulation import FastShowerSimulator

        simulator = self.simulator if self.simulator is not None else FastShowerSimulator()
        detector = self.layout.build(design, self.materials)
        batch = simulator.simulate(detector, n_events, self.particles, self.energy_range, int(seed))
        return Events(
            features=np.asarray(batch.active_deposits, dtype=np.float64),
            context=batch.particle_onehot(self.particles),
            target=np.asarray(batch.energy, dtype=np.float64)[:, None],
        )


class NetworkReconstruction:
    """The AIDO reconstruction network (Tables 2-3, eq. 10) behind the loop's interface, with warm start."""

    def __init__(
        self, n_design: int, n_features: int, config: Any = None, n_context: int = 0, loss_fn: PerEventLoss | None = None
    ) -> None:
        from detopt.reconstruction import Reconstruction, ReconstructionConfig

        self.n_design, self.n_features, self.n_context = n_design, n_features, n_context
        self.loss_fn = loss_fn
        self.config = config if config is not None else ReconstructionConfig()
        self.model = Reconstruction(n_design, n_features, n_context)

    def _context(self, events: Events) -> np.ndarray | None:
        return events.context if self.n_context else None

    def fit(self, design: np.ndarray, events: Events, seed: int, warm: bool) -> dict[str, Any]:
        import dataclasses

        from detopt.reconstruction import Reconstruction

        config = dataclasses.replace(self.config, seed=int(seed))
        new = Reconstruction(self.n_design, self.n_features, self.n_context)
        result = new.fit(
            design, events.features, self._context(events), events.target[:, 0], config,
            init_from=self.model if (warm and self.model.fitted) else None,
            loss_fn=None if self.loss_fn is None else _first_target(self.loss_fn),
        )
        self.model = new
        return {
            "initial_train_loss": result.initial_train_loss,
            "final_train_loss": result.train_loss[-1] if result.train_loss else None,
            "best_val_loss": result.best_val_loss,
            "epochs": len(result.train_loss),
            "seconds": result.seconds,
        }

    def predict(self, design: np.ndarray, events: Events) -> np.ndarray:
        return np.asarray(self.model.predict(design, events.features, self._context(events)))[:, None]

    def save(self, directory: Path) -> None:
        self.model.save(directory)

    def load(self, directory: Path) -> None:
        from detopt.reconstruction import Reconstruction

        self.model = Reconstruction.load(directory)


def _first_target(loss_fn: PerEventLoss) -> PerEventLoss:
    """The per-event loss of a one-target network (n-shaped tensors) through an n x 1 loss function."""
    return lambda reco, true: loss_fn(reco[:, None], true[:, None]).reshape(-1)


class FunctionReconstruction:
    """A user's reconstruction without training: ``function(design, features, context) -> T_reco``.

    ``design`` maps each parameter name to its per-event values (continuous: numbers; discrete:
    the chosen category names), ``features`` and ``context`` are n x F and n x C arrays; the
    function returns n (one target) or n x T numbers. Used for analytic reconstructions
    (a track fit, a calibration constant) that need no network.
    """

    def __init__(self, function: Any, space: DesignSpace, n_targets: int) -> None:
        self.function, self.space, self.n_targets = function, space, n_targets

    def fit(self, design: np.ndarray, events: Events, seed: int, warm: bool) -> dict[str, Any]:
        return {}

    def predict(self, design: np.ndarray, events: Events) -> np.ndarray:
        named: dict[str, np.ndarray] = {}
        for name, s in self.space.encoding_slices().items():
            parameter = self.space[name]
            block = design[:, s]
            if hasattr(parameter, "categories"):
                named[name] = np.asarray(parameter.categories, dtype=object)[np.argmax(block, axis=1)]
            else:
                named[name] = block[:, 0]
        try:
            result = np.asarray(self.function(named, events.features, events.context), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"reconstruction.function: {type(exc).__name__}: {exc}") from None
        if result.ndim == 1:
            result = result[:, None]
        if result.shape != (len(events), self.n_targets):
            raise DataError(
                f"reconstruction.function returned shape {result.shape}; expected ({len(events)},) or ({len(events)}, {self.n_targets})"
            )
        if not np.all(np.isfinite(result)):
            raise DataError(f"reconstruction.function returned {int(np.sum(~np.isfinite(result)))} NaN or infinite value(s)")
        return result

    def save(self, directory: Path) -> None:
        return None

    def load(self, directory: Path) -> None:
        return None


class IdentityReconstruction:
    """T_reco = the first ``n_targets`` features: for problems whose simulation already outputs the estimate."""

    def __init__(self, n_targets: int = 1) -> None:
        self.n_targets = n_targets

    def fit(self, design: np.ndarray, events: Events, seed: int, warm: bool) -> dict[str, Any]:
        return {}

    def predict(self, design: np.ndarray, events: Events) -> np.ndarray:
        return np.asarray(events.features[:, : self.n_targets], dtype=np.float64)

    def save(self, directory: Path) -> None:
        return None

    def load(self, directory: Path) -> None:
        return None
