"""The fast simulator against the broad Geant4 reference (docs/data/geant4_broad_reference.json).

The reference's validation designs never enter the fit (docs/scripts/calibrate_fastsim.py fit-broad);
these tests pin the split and the agreement documented in docs/geant4.md, so that a change of the
simulator that loses agreement on designs it was not tuned on fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detopt.simulation.geant4 import fidelity as fd

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "data" / "geant4_broad_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def judged(reference: dict) -> tuple[list[fd.Comparison], list[fd.Comparison]]:
    points = reference["points"]
    fast = [fd.fast_statistics(p, reference["transverse_size_cm"], 3000) for p in points]
    return fd.judge(points, fast)


def test_reference_spans_the_material_table_and_is_split_by_design(reference: dict) -> None:
    points = reference["points"]
    designs = {p["design"]: p for p in points}
    assert len(designs) >= 30
    materials = {m for p in points for m, _, _ in p["layers"]}
    assert {"Pb", "W", "Fe", "Cu", "PbWO4", "BGO", "CsI", "PbF2", "polystyrene", "Si"} <= materials
    thickness = [t for p in points for _, t, _ in p["layers"]]
    assert min(thickness) <= 0.15 and max(thickness) >= 50.0
    assert {len(p["layers"]) for p in points} == {3, 4, 5, 6}
    assert {p["particle"] for p in points} == {"gamma", "pi+"}
    assert min(p["energy_gev"] for p in points) == 2.0 and max(p["energy_gev"] for p in points) == 20.0
    assert min(p["n"] for p in points) >= 400
    for p in points:
        assert p["split"] == ("validation" if p["design_index"] % 3 == 2 else "calibration")
    assert sum(p["split"] == "validation" for p in designs.values()) >= 10


def test_validation_cells_agree_as_documented(judged: tuple[list[fd.Comparison], list[fd.Comparison]]) -> None:
    """The judged validation cells within 10% (mean) and 25% (width) as often as docs/geant4.md says (34%;
    20% before the broad fit): the goal of 70% is not reached, this guards what is."""
    scores = fd.scores(*judged, "validation")
    assert scores["validation_judged_cells"] >= 55
    assert scores["validation_cells_passing_fraction"] >= 0.30
    assert scores["validation_cells_mean_within_10pct_fraction"] >= 0.33
    assert scores["validation_cells_width_within_25pct_fraction"] >= 0.65


def test_validation_totals_agree_as_documented(judged: tuple[list[fd.Comparison], list[fd.Comparison]]) -> None:
    """Total deposit per row: mean within 5% in 72% of the validation rows, width within 25% in 85%."""
    scores = fd.scores(*judged, "validation")
    assert scores["validation_rows_total_mean_within_5pct_fraction"] >= 0.65
    assert scores["validation_rows_total_width_within_25pct_fraction"] >= 0.70


def test_calibration_and_validation_agree_alike(judged: tuple[list[fd.Comparison], list[fd.Comparison]]) -> None:
    """No overfitting: the passing fraction on designs the fit saw is within 15 points of the unseen ones."""
    cal = fd.scores(*judged, "calibration")["calibration_cells_passing_fraction"]
    val = fd.scores(*judged, "validation")["validation_cells_passing_fraction"]
    assert abs(cal - val) < 0.15


def test_contained_photon_totals_fluctuate_like_geant4(judged: tuple[list[fd.Comparison], list[fd.Comparison]]) -> None:
    """Rows where Geant4 contains a photon to better than 1%: the fast total's width is 0.5-2x Geant4's
    (a few MeV of escaping backscatter), not the ~0.01x of a simulator that conserves energy exactly."""
    ratios = [r.width_ratio for r in judged[1] if r.particle == "gamma" and r.geant4_mean > 0.99 * r.energy_gev]
    assert len(ratios) >= 10
    assert 0.5 < float(np.median(ratios)) < 2.0
