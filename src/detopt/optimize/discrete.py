"""Discrete choices outside the gradient: the sampling floor and the final commit to one category.

The optimizer moves the probabilities P of every category (softmax of logits, AIDO section 5),
with a trust region of its own (:class:`detopt.optimize.optimizer.DesignOptimizer`). Two
more rules keep the choice honest:

- designs are drawn from P mixed with the uniform distribution so that every category keeps a
  sampling probability of at least ``floor``: a category the surrogate never sees again cannot
  win back;
- in the last iterations every discrete parameter is committed to its most probable category
  (one-hot, no longer optimized) and only the continuous values move: the design returned is
  the one a physicist would build, optimized for those materials rather than for a mixture.
"""

from __future__ import annotations

import numpy as np

from detopt.design import DesignSpace
from detopt.errors import ConfigError

__all__ = ["committed", "floored_probabilities", "moved_towards"]


def floored_probabilities(probabilities: np.ndarray | tuple[float, ...], floor: float) -> np.ndarray:
    """(1 - K floor) P + floor: P mixed with the uniform distribution so that every category has >= floor."""
    p = np.asarray(probabilities, dtype=np.float64)
    k = len(p)
    if not 0 <= floor < 1.0 / k:
        raise ConfigError("optimizer.discrete.sampling_floor", f"must be in [0, 1/{k}) for {k} categories, got {floor}")
    return (1.0 - k * floor) * p + floor


def committed(space: DesignSpace) -> DesignSpace:
    """The space with every discrete parameter fixed to its most probable category (one-hot, not optimizable)."""
    entries = []
    for p in space.parameters:
        entry = p.model_dump()
        if entry.get("type") == "discrete":
            onehot = [0.0] * len(p.categories)  # type: ignore[union-attr]
            onehot[p.categories.index(p.most_probable)] = 1.0  # type: ignore[union-attr]
            entry.update(probabilities=onehot, optimizable=False)
        entries.append(entry)
    return DesignSpace(version=space.version, parameters=entries)


def moved_towards(space: DesignSpace, design: dict[str, float | str], weight: float = 0.5) -> DesignSpace:
    """The space centred on ``design``: its continuous values, and P -> (1 - weight) P + weight onehot(design's category)."""
    values = {p.name: float(design[p.name]) for p in space.continuous if p.optimizable}
    probabilities = {}
    for p in space.discrete:
        if p.optimizable:
            onehot = np.zeros(len(p.categories))
            onehot[p.categories.index(str(design[p.name]))] = 1.0
            probabilities[p.name] = (1.0 - weight) * np.asarray(p.probabilities) + weight * onehot
    return space.with_values(values, probabilities, clip=True)
