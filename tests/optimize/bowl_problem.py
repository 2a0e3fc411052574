"""A noisy test problem with a known optimum, plugged into the SRSO loop through its small interfaces.

Design: two continuous parameters x = (x0, x1) and a discrete choice {"good", "bad"}. Each event
has two targets; its "reconstructed" targets are T_reco = T_true + (x - X_STAR) + s z with z ~ N(0, I),
s = S0 for "good" and sqrt(S0^2 + BAD_NOISE^2) for "bad", so the expected per-event loss (summed
squared error) is the quadratic bowl |x - X_STAR|^2 + 2 S0^2 (+ 2 BAD_NOISE^2 if bad): minimum at
X_STAR with the "good" choice (extra noise cannot be compensated by moving x). A length constraint x0 + x1 <= LIMIT (penalty weight W, AIDO eq. 7 form) moves the
optimum of the penalized objective onto a point computed in closed form below.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.optimize.penalties import length_penalty_for, total_length_for
from detopt.optimize.problem import Events, IdentityReconstruction, Monitor, Problem

X_STAR = np.array([3.0, 2.0])
S0 = 0.3
BAD_NOISE = 0.7
LIMIT = 4.0
W = 10.0


def squared_error(t_reco: torch.Tensor, t_true: torch.Tensor) -> torch.Tensor:
    return ((t_reco - t_true) ** 2).sum(dim=1)


def simulate_bowl(design: Mapping[str, float | str], n_events: int, seed: int) -> Events:
    rng = np.random.default_rng(seed)
    x = np.array([design["x0"], design["x1"]], dtype=float)
    spread = np.sqrt(S0**2 + (BAD_NOISE**2 if design["choice"] == "bad" else 0.0))
    truth = rng.uniform(1.0, 2.0, size=(n_events, 2))
    reco = truth + (x - X_STAR) + spread * rng.standard_normal((n_events, 2))
    return Events(features=reco, context=np.zeros((n_events, 0)), target=truth)


def constrained_optimum() -> np.ndarray:
    """argmin |x - X_STAR|^2 + W ReLU(x0 + x1 - LIMIT)^2: along (1,1), t = excess / 2 per coordinate."""
    excess = X_STAR.sum() - LIMIT  # > 0: the constraint is active
    # minimize over x = X_STAR - a (1,1): 2 a^2 + W (excess - 2a)^2 -> a = W excess / (1 + 2 W) ... per coordinate
    a = 2 * W * excess / (2 + 4 * W)
    return X_STAR - a


def bowl_problem(start: tuple[float, float] = (0.5, 0.5), sigma: float = 0.6) -> Problem:
    space = DesignSpace(parameters=[
        ContinuousParameter(name="x0", value=start[0], bounds=(-10.0, 10.0), sigma=sigma),
        ContinuousParameter(name="x1", value=start[1], bounds=(-10.0, 10.0), sigma=sigma),
        DiscreteParameter(name="choice", categories=["good", "bad"], probabilities=[0.5, 0.5]),
    ])
    length = total_length_for(space, ["x0", "x1"])
    return Problem(
        space=space,
        simulate=simulate_bowl,
        reconstruction=IdentityReconstruction(n_targets=2),
        penalties=[(length_penalty_for(space, LIMIT, ["x0", "x1"]), W)],
        loss_fn=squared_error,
        monitors={"length": Monitor(length, LIMIT)},
    )
