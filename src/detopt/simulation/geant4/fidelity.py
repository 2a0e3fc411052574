"""How well the fast simulator reproduces a stored Geant4 reference of many designs.

The reference (``docs/data/geant4_broad_reference.json``, made by
``docs/scripts/geant4_broad_reference.py``) holds, per point (design, particle, energy), Geant4's
per-layer mean and standard deviation and the total deposit's mean, width and quantiles. Here the
fast simulator is run on the same points and judged cell by cell:

* a *judged cell* is an active layer where Geant4's mean deposit is at least 1 MeV; it passes when
  the fast mean is within 10% of Geant4's and the width within 25%;
* a *row* (one point) passes on the total deposit when its mean is within 5% and its width within 25%.

No Geant4 is needed to judge: only the stored numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from detopt.detector import SamplingCalorimeter

#: Geant4 mean (GeV) below which an active layer is not judged (stray particles, a few hundred keV).
MIN_JUDGED_MEAN_GEV = 0.001
#: Tolerances of the per-cell and per-row comparison (relative).
CELL_MEAN_TOLERANCE, CELL_WIDTH_TOLERANCE = 0.10, 0.25
TOTAL_MEAN_TOLERANCE, TOTAL_WIDTH_TOLERANCE = 0.05, 0.25


def point_detector(point: dict, transverse_size_cm: float) -> SamplingCalorimeter:
    """The calorimeter of one reference point (layers as (material, thickness cm, active))."""
    return SamplingCalorimeter.from_layers([tuple(x) for x in point["layers"]], transverse_size_cm)


def summarize(deposits: np.ndarray, quantiles: Sequence[float] = (0.05, 0.16, 0.5, 0.84, 0.95)) -> dict:
    """Per-layer mean and std (GeV) and the total deposit's mean, std and quantiles."""
    total = deposits.sum(axis=1)
    return {"mean": deposits.mean(axis=0).tolist(), "std": deposits.std(axis=0, ddof=1).tolist(),
            "total_mean": float(total.mean()), "total_std": float(total.std(ddof=1)),
            "total_quantiles": np.quantile(total, list(quantiles)).tolist()}


def fast_statistics(point: dict, transverse_size_cm: float, n_events: int = 4000, seed: int = 7) -> dict:
    """The fast simulator's summary of one reference point (same design and beam, on the axis)."""
    from detopt.simulation.fastsim import FastShowerSimulator

    e = float(point["energy_gev"])
    batch = FastShowerSimulator().simulate(
        point_detector(point, transverse_size_cm), n_events, (point["particle"],), (e, e), seed=seed
    )
    return summarize(batch.deposits)


@dataclass(frozen=True)
class Comparison:
    """Geant4 against the fast simulator on one judged quantity of one point: an active layer's deposit
    (``layer`` set) or the total deposit (``layer`` None); means and widths in GeV, ``n`` Geant4 events."""

    design: str
    split: str
    particle: str
    energy_gev: float
    n: int
    geant4_mean: float
    geant4_std: float
    fast_mean: float
    fast_std: float
    layer: int | None = None
    material: str | None = None

    @property
    def mean_ratio(self) -> float:
        return self.fast_mean / self.geant4_mean if self.geant4_mean > 0 else float("inf")

    @property
    def width_ratio(self) -> float:
        return self.fast_std / self.geant4_std if self.geant4_std > 0 else float("inf")

    @property
    def tolerances(self) -> tuple[float, float]:
        if self.layer is None:
            return TOTAL_MEAN_TOLERANCE, TOTAL_WIDTH_TOLERANCE
        return CELL_MEAN_TOLERANCE, CELL_WIDTH_TOLERANCE

    @property
    def passes(self) -> bool:
        mean_tol, width_tol = self.tolerances
        return abs(self.mean_ratio - 1) <= mean_tol and abs(self.width_ratio - 1) <= width_tol


def judge(points: Iterable[dict], fast: Iterable[dict]) -> tuple[list[Comparison], list[Comparison]]:
    """Judged cells (active layers with a Geant4 mean of at least 1 MeV) and total-deposit rows of every
    point, given the fast simulator's summaries."""
    cells: list[Comparison] = []
    rows: list[Comparison] = []
    for point, f in zip(points, fast):
        g = point["geant4"]
        key = (point["design"], point["split"], point["particle"], float(point["energy_gev"]), int(point.get("n", 400)))
        for i, (material, _, active) in enumerate(point["layers"]):
            if active and g["mean"][i] >= MIN_JUDGED_MEAN_GEV:
                cells.append(Comparison(*key, g["mean"][i], g["std"][i], f["mean"][i], f["std"][i], i, material))
        rows.append(Comparison(*key, g["total_mean"], g["total_std"], f["total_mean"], f["total_std"]))
    return cells, rows


def scores(cells: Sequence[Comparison], rows: Sequence[Comparison], split: str) -> dict[str, float]:
    """Fractions of passing cells and rows (and the row criteria apart) of one split."""
    c = [x for x in cells if x.split == split]
    r = [x for x in rows if x.split == split]

    def frac(items: Sequence[object], test) -> float:
        return float(np.mean([test(x) for x in items])) if items else float("nan")

    return {
        f"{split}_judged_cells": float(len(c)),
        f"{split}_cells_passing_fraction": frac(c, lambda x: x.passes),
        f"{split}_cells_mean_within_10pct_fraction": frac(c, lambda x: abs(x.mean_ratio - 1) <= CELL_MEAN_TOLERANCE),
        f"{split}_cells_width_within_25pct_fraction": frac(c, lambda x: abs(x.width_ratio - 1) <= CELL_WIDTH_TOLERANCE),
        f"{split}_rows": float(len(r)),
        f"{split}_rows_total_passing_fraction": frac(r, lambda x: x.passes),
        f"{split}_rows_total_mean_within_5pct_fraction": frac(r, lambda x: abs(x.mean_ratio - 1) <= TOTAL_MEAN_TOLERANCE),
        f"{split}_rows_total_width_within_25pct_fraction": frac(r, lambda x: abs(x.width_ratio - 1) <= TOTAL_WIDTH_TOLERANCE),
    }


#: Deposit (GeV) added to both sides of a cell's ratio in the fit: keeps MeV-level cells from dominating.
FIT_FLOOR_GEV = 0.0005


def residuals(points: Sequence[dict], fast: Sequence[dict]) -> np.ndarray:
    """Fit residuals in units of the tolerances, for every judged cell and row (`judge`): log ratios of
    the means (tolerance combined with Geant4's statistical error; cells with FIT_FLOOR_GEV added to both
    sides) and of the widths."""
    cells, rows = judge(points, fast)
    out: list[float] = []
    for c in (*cells, *rows):
        mean_tol, width_tol = c.tolerances
        floor = FIT_FLOOR_GEV if c.layer is not None else 0.0
        scale = np.hypot(mean_tol, c.geant4_std / np.sqrt(c.n) / max(c.geant4_mean, 1e-12))
        out.append(np.log(max(c.fast_mean + floor, 1e-9) / max(c.geant4_mean + floor, 1e-9)) / scale)
        out.append(np.log(max(c.fast_std + floor, 1e-9) / max(c.geant4_std + floor, 1e-9)) / width_tol)
    return np.asarray(out)
