"""The global first phase: designs spread over the whole box before the local SRSO iterations.

SRSO is a local method: it moves the design by about one sampling width per iteration. When
good designs lie far from the start (thin absorbers and thick active layers, 80 cm away in the
AIDO calorimeter), a few designs spread over the box find the right basin for the same events.
"""

from __future__ import annotations

import warnings

import numpy as np

from detopt.design import DesignSpace

__all__ = ["space_filling_designs"]

Design = dict[str, float | str]


def space_filling_designs(space: DesignSpace, n: int, rng: np.random.Generator) -> list[Design]:
    """The current design and ``n - 1`` designs of a scrambled Latin hypercube over the box (categories uniform).

    Fixed parameters keep their value (discrete: the most probable category).
    """
    from scipy.stats import qmc

    current = space.current_design()
    continuous = [p for p in space.continuous if p.optimizable]
    discrete = [p for p in space.discrete if p.optimizable]
    dims = len(continuous) + len(discrete)
    if n <= 1 or dims == 0:
        return [current] * max(n, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = qmc.LatinHypercube(d=dims, rng=rng).random(n - 1)
    designs = [current]
    for row in points:
        design = dict(current)
        for j, p in enumerate(continuous):
            low, high = p.bounds
            design[p.name] = float(low + row[j] * (high - low))
        for j, p in enumerate(discrete):
            k = len(p.categories)
            design[p.name] = p.categories[min(int(row[len(continuous) + j] * k), k - 1)]
        designs.append(design)
    return designs
