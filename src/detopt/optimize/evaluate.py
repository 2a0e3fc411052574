"""Judge a design by fresh simulation, not by the surrogate: the reconstruction loss it really reaches.

``fresh_reconstruction_loss`` simulates new events of one design (a seed not used by the run),
trains a fresh reconstruction on part of them and returns its loss (AIDO eq. 10) on the rest.
Comparing the start and the final design this way measures what the optimization gained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detopt.optimize.problem import Problem

__all__ = ["fresh_reconstruction_loss"]


def fresh_reconstruction_loss(
    problem: Problem,
    design: Mapping[str, float | str],
    n_events: int = 8000,
    seed: int = 2**31 - 7,
    test_fraction: float = 0.5,
) -> dict[str, Any]:
    """Mean per-event loss on held-out fresh events of ``design`` after training a new reconstruction.

    Uses ``problem.simulate``, ``problem.reconstruction`` (re-fitted from scratch, so the run's
    reconstruction is not touched on disk) and ``problem.loss_fn``.
    """
    import copy

    import torch

    events = problem.simulate(dict(design), n_events, seed)
    n_test = int(round(test_fraction * len(events)))
    test, train = np.arange(n_test), np.arange(n_test, len(events))
    encoding = problem.space.encode([dict(design)])[0]
    reco = copy.deepcopy(problem.reconstruction)
    rows = np.repeat(encoding[None, :], len(train), axis=0)
    reco.fit(rows, events.select(train), seed=seed % 2**31, warm=False)
    test_events = events.select(test)
    predicted = reco.predict(np.repeat(encoding[None, :], len(test), axis=0), test_events)
    loss = problem.loss_fn(torch.as_tensor(predicted), torch.as_tensor(test_events.target)).reshape(len(test), -1).mean(1)
    return {"loss": float(loss.mean()), "loss_error": float(loss.std() / np.sqrt(len(test))), "n_test": len(test)}
