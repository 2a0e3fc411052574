"""The calibrated fast simulator against the stored Geant4 reference (``docs/data/geant4_reference.json``,
Geant4 11.4 FTFP_BERT_EMV-noEmExtra on detopt's substitute data; docs/geant4.md, "Calibration").

Tolerances are the agreement the calibration reached (docs/geant4.md), not the goal of issue 6 where the
goal is missed; each test says which. The fast simulator runs with a fixed seed, 3000 events per case.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detopt.simulation.geant4.compare import _fastsim_case

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "data" / "geant4_reference.json"
N_FAST = 3000


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def _cases(reference: dict, **match: object) -> list[dict]:
    return [c for c in reference["cases"] if all(c.get(k) == v for k, v in match.items())]


def _with_fast(reference: dict, **match: object) -> list[tuple[dict, dict]]:
    return [(c, _fastsim_case(c, N_FAST)) for c in _cases(reference, **match)]


def test_reference_is_geant4_on_stated_statistics(reference: dict) -> None:
    """The stored table holds what the docs say: 16 layered cases and 8 blocks, 400 Geant4 events per
    layered case (2000 for pions at 2, 5 and 10 GeV on the AIDO start design), 150 per block."""
    layered = _cases(reference, kind="layers")
    assert len(layered) == 16 and len(_cases(reference, kind="block")) == 8
    assert sorted(c["n_geant4"] for c in layered) == [400] * 13 + [2000] * 3
    assert all(c["geant4_data"] == "substitute" for c in layered)


def test_photons_in_thick_pbwo4_match_geant4_mean_and_width(reference: dict) -> None:
    """Optimized-like design (1 cm Pb, 25 cm PbWO4, ...), photons 2-20 GeV: the PbWO4 layer's mean deposit
    within 2% of Geant4's (0.985-0.992: the albedo that leaves through the front face); its width within 50%
    at 2-10 GeV, within 80% at 20 GeV (1.2-1.75x: the broad fit widened the shower-shape fluctuations for
    partly contained crystals, docs/geant4.md, "Broad reference"; before any calibration 1.2-2.7x)."""
    for case, fast in _with_fast(reference, kind="layers", design="optimized-like", particle="gamma"):
        g = case["geant4"]
        assert fast["mean"][1] == pytest.approx(g["mean"][1], rel=0.02), case["energy_gev"]
        width_tolerance = 0.50 if case["energy_gev"] <= 10.0 else 0.80
        assert fast["std"][1] == pytest.approx(g["std"][1], rel=width_tolerance), case["energy_gev"]


def test_photon_shower_shape_in_pbwo4_block(reference: dict) -> None:
    """30 cm PbWO4: containment within 0.8% of Geant4's (0.4-0.65% low: the albedo that leaves through
    the front face; before any calibration 0.4-0.6% low); energy within 0.8 cm of
    the axis within 5 points (before: up to 8 points too much); median depth within 20% and deeper than
    Geant4's - the PDG rule t_95 = t_max + 0.08 Z + 9.6, which the physics tests keep within 10%, is
    20-30% deeper than Geant4's (docs/geant4.md)."""
    for case, fast in _with_fast(reference, kind="block", particle="gamma"):
        g = case["geant4"]
        assert fast["containment"] == pytest.approx(g["containment"], abs=0.008)
        within = [np.cumsum(x["radial_fraction"])[1] for x in (g, fast)]
        assert within[1] == pytest.approx(within[0], abs=0.05)
        assert fast["depth50_cm"] == pytest.approx(g["depth50_cm"], rel=0.20)
        assert fast["depth50_cm"] > g["depth50_cm"]  # the known, PDG-bound difference


def test_pion_scintillator_means(reference: dict) -> None:
    """Pions on both designs: every judged scintillator mean within a factor MAX_PION_RATIO of Geant4's
    (before: 0.77-2.7); at least MIN_PION_GOAL of the 24 rows meet the goal (mean 10%, width 25%; before:
    2)."""
    ratios, met = [], 0
    for case, fast in _with_fast(reference, kind="layers", particle="pi+"):
        g = case["geant4"]
        for i, active in enumerate(case["active"]):
            if not active or max(g["mean"][i], fast["mean"][i]) < 0.005:
                continue
            rm, rs = fast["mean"][i] / g["mean"][i], fast["std"][i] / g["std"][i]
            ratios.append(rm)
            met += abs(rm - 1) <= 0.10 and abs(rs - 1) <= 0.25
    assert len(ratios) == 24
    assert max(ratios) < MAX_PION_RATIO and min(ratios) > 1 / MAX_PION_RATIO
    assert met >= MIN_PION_GOAL


def test_pion_shower_in_iron_block(reference: dict) -> None:
    """170 cm Fe: containment (visible / E) below Geant4's by at most 0.09 (before: 0.04-0.095 below;
    the compromise with the scintillator means, docs/geant4.md), median depth within 20% (before: +5% to
    +31%)."""
    for case, fast in _with_fast(reference, kind="block", particle="pi+"):
        g = case["geant4"]
        assert 0.0 < g["containment"] - fast["containment"] < 0.09, case["energy_gev"]
        assert fast["depth50_cm"] == pytest.approx(g["depth50_cm"], rel=0.20), case["energy_gev"]


#: Achieved agreement on pions (set from the calibration run documented in docs/geant4.md).
MAX_PION_RATIO = 1.5
MIN_PION_GOAL = 4
