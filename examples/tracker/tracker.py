"""A three-layer tracker in a solenoid: momentum resolution against the cost of the magnet and the sensors.

The user code of ``examples/tracker/config.yaml`` (all of it; the rest is YAML):

- ``simulate(design, n_events, seed)``: muons of momentum p (uniform in 1-20 GeV) cross three
  equidistant sensor layers over a lever arm L in a field B. The sagitta of the track,
  s = 0.3 B L^2 / (8 p) (metres, tesla, GeV), is measured from the three hits, each smeared by
  the sensor's resolution sigma; the middle layer (thickness x/X0) scatters the track by the
  Highland angle theta0 = 0.0136 / p sqrt(x/X0) (1 + 0.038 ln(x/X0)) (PDG eq. 34.16, beta = 1),
  which moves the last hit by theta L / 2 and so the sagitta by theta L / 4.
- ``reconstruct(design, features, context)``: the curvature 1/p from the measured sagitta,
  k = 8 s / (0.3 B L^2).
- ``cost_meur(design)``: magnet 0.25 B^2 L^2 plus sensors c_sensor L (MEUR), with the sensor
  price as the probability-weighted mean while the sensor is still being chosen.

The loss is the relative curvature resolution squared, ((k_reco - k) / k)^2, whose expectation
has a closed form (``expected_loss``):

    E[loss] = (8 / (0.3 B L^2))^2 (1.5 sigma^2 E[p^2] + c_ms^2 L^2 / 16),
    c_ms = 0.0136 sqrt(x/X0) (1 + 0.038 ln(x/X0)),  E[p^2] = (p_max^3 - p_min^3) / (3 (p_max - p_min)),

(1.5 sigma^2 is the variance of s = x2 - (x1 + x3) / 2); ``closed_form_optimum`` minimizes it
under the cost limit and the parameter bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

P_RANGE_GEV = (1.0, 20.0)
#: sensor -> (hit resolution in m, thickness in radiation lengths, price in MEUR per m of lever arm)
SENSORS: dict[str, tuple[float, float, float]] = {
    "strip": (20e-6, 0.010, 0.4),
    "pixel": (8e-6, 0.020, 1.0),
    "maps": (4e-6, 0.005, 2.0),
}
MAGNET_MEUR_PER_T2_M2 = 0.25
COST_LIMIT_MEUR = 3.0  # the limit of penalties.custom in config.yaml
BOUNDS = {"lever_arm_m": (0.2, 3.0), "field_T": (0.5, 8.0)}  # the bounds of the design in config.yaml
SAGITTA_FACTOR = 0.3 / 8.0  # s = 0.3 B L^2 / (8 p): 0.3 GeV / (T m) is e c


def highland_coefficient(x_over_x0: float) -> float:
    """theta0 * p in GeV (PDG eq. 34.16 for beta = 1, unit charge)."""
    return 0.0136 * math.sqrt(x_over_x0) * (1.0 + 0.038 * math.log(x_over_x0))


def simulate(design: Mapping[str, Any], n_events: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    length, field = float(design["lever_arm_m"]), float(design["field_T"])
    sigma, x_over_x0, _ = SENSORS[str(design["sensor"])]
    p = rng.uniform(*P_RANGE_GEV, n_events)
    sagitta = SAGITTA_FACTOR * field * length**2 / p
    hits = rng.normal(0.0, sigma, (n_events, 3))
    theta = rng.normal(0.0, 1.0, n_events) * highland_coefficient(x_over_x0) / p
    measured = sagitta + hits[:, 1] - 0.5 * (hits[:, 0] + hits[:, 2]) - theta * length / 4.0
    return {"sagitta_m": measured, "curvature_per_gev": 1.0 / p}


def reconstruct(design: Mapping[str, np.ndarray], features: np.ndarray, context: np.ndarray) -> np.ndarray:
    return features[:, 0] / (SAGITTA_FACTOR * design["field_T"] * design["lever_arm_m"] ** 2)


def cost_meur(design: Mapping[str, Any]) -> Any:
    import torch

    price = torch.as_tensor([SENSORS[name][2] for name in SENSORS], dtype=design["sensor"].dtype)
    sensor_price = torch.sum(design["sensor"] * price)
    return MAGNET_MEUR_PER_T2_M2 * design["field_T"] ** 2 * design["lever_arm_m"] ** 2 + sensor_price * design["lever_arm_m"]


def expected_loss(length: float, field: float, sensor: str) -> float:
    """The closed form of E[((k_reco - k) / k)^2] (module docstring)."""
    sigma, x_over_x0, _ = SENSORS[sensor]
    lo, hi = P_RANGE_GEV
    mean_p2 = (hi**3 - lo**3) / (3.0 * (hi - lo))
    scale = 1.0 / (SAGITTA_FACTOR * field * length**2)
    return scale**2 * (1.5 * sigma**2 * mean_p2 + highland_coefficient(x_over_x0) ** 2 * length**2 / 16.0)


def cost(length: float, field: float, sensor: str) -> float:
    return MAGNET_MEUR_PER_T2_M2 * field**2 * length**2 + SENSORS[sensor][2] * length


def closed_form_optimum(limit: float = COST_LIMIT_MEUR) -> dict[str, Any]:
    """The best design under cost <= limit and the bounds: for each sensor the field is the largest the budget
    allows (the loss falls with B), leaving a one-dimensional minimization over L (a dense grid, refined)."""
    best: dict[str, Any] | None = None
    for sensor in SENSORS:
        lo, hi = BOUNDS["lever_arm_m"]
        for _ in range(4):
            grid = np.linspace(lo, hi, 4001)
            budget = limit - SENSORS[sensor][2] * grid
            field = np.where(budget > 0, np.sqrt(np.clip(budget, 0, None) / MAGNET_MEUR_PER_T2_M2) / grid, 0.0)
            field = np.minimum(field, BOUNDS["field_T"][1])
            ok = field >= BOUNDS["field_T"][0]
            if not ok.any():
                break
            losses = np.array([expected_loss(l, b, sensor) if good else np.inf for l, b, good in zip(grid, field, ok)])
            i = int(np.argmin(losses))
            step = grid[1] - grid[0]
            lo, hi = max(BOUNDS["lever_arm_m"][0], grid[i] - 2 * step), min(BOUNDS["lever_arm_m"][1], grid[i] + 2 * step)
            row = {"sensor": sensor, "lever_arm_m": float(grid[i]), "field_T": float(field[i]), "loss": float(losses[i])}
        if ok.any() and (best is None or row["loss"] < best["loss"]):
            best = row
    assert best is not None
    return best


if __name__ == "__main__":
    print(closed_form_optimum())
