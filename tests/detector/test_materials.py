"""The material table against PDG values and the calorimeter geometry."""

from __future__ import annotations

import pytest

from detopt.detector import CalorimeterLayout, Layer, SamplingCalorimeter, get_material, material_table
from detopt.errors import ConfigError

REQUIRED = ["Pb", "Fe", "W", "Cu", "PbWO4", "PbF2", "BGO", "CsI", "LAr", "Si", "polystyrene"]


def test_table_has_required_materials_with_sources() -> None:
    table = material_table()
    for name in REQUIRED:
        m = table[name]
        for key in ("density", "X0", "lambda_I", "lambda_pi", "E_c", "dE/dx_min", "Z", "R_M"):
            assert m.sources.get(key), f"{name} lacks a source for {key}"


@pytest.mark.parametrize(
    ("name", "x0", "lam", "rm", "ec", "dedx"),
    [  # PDG Atomic and nuclear properties (DESIGN.md section 5)
        ("Pb", 0.5612, 17.59, 1.602, 7.43, 12.74),
        ("Fe", 1.757, 16.77, 1.719, 21.68, 11.43),
        ("PbWO4", 0.8903, 20.27, 1.959, 9.64, 10.20),
        ("polystyrene", 41.31, 77.07, 9.4, 94.0, 2.05),
    ],
)
def test_pdg_values(name: str, x0: float, lam: float, rm: float, ec: float, dedx: float) -> None:
    m = get_material(name)
    assert m.radiation_length_cm == pytest.approx(x0, rel=1e-3)
    assert m.nuclear_interaction_length_cm == pytest.approx(lam, rel=1e-3)
    assert m.moliere_radius_cm == pytest.approx(rm, rel=0.01)
    assert m.critical_energy_mev == pytest.approx(ec, rel=0.015)
    assert m.dedx_min_mev_cm == pytest.approx(dedx, rel=0.005)


def test_rossi_critical_energy_is_close_to_x0_times_dedx() -> None:
    """E_c ~ X0 dE/dx|min (Rossi's definition) within 15% for every material: a consistency check."""
    for m in material_table().values():
        assert m.ionization_per_radiation_length_mev == pytest.approx(m.critical_energy_mev, rel=0.15), m.name


def test_unknown_material_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="unknown material 'unobtainium'.*PbWO4"):
        get_material("unobtainium")
    assert get_material("lead").name == "Pb"


def test_calorimeter_geometry() -> None:
    det = SamplingCalorimeter((Layer("a", get_material("Pb"), 1.1224, False), Layer("b", get_material("Fe"), 1.757, True)))
    assert det.radiation_lengths == pytest.approx(3.0, rel=1e-3)
    assert det.depth_cm == pytest.approx(2.8794)
    assert list(det.active_mask) == [False, True]


@pytest.mark.parametrize("thickness", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_thickness(thickness: float) -> None:
    with pytest.raises(ConfigError, match=r"layers\[a\].thickness_cm"):
        Layer("a", get_material("Pb"), thickness, False)


def test_layout_builds_from_design_and_names_bad_fields() -> None:
    layout = CalorimeterLayout.from_dict({"layers": [{"name": "abs", "active": False}, {"name": "sci", "active": True, "material": "polystyrene"}]})
    det = layout.build({"abs_thickness": 3.0, "abs_material": "Fe", "sci_thickness": 1.0})
    assert det.layers[0].material.name == "Fe" and det.layers[1].material.name == "polystyrene"
    with pytest.raises(ConfigError, match="abs_material"):
        layout.build({"abs_thickness": 3.0, "abs_material": "Xx", "sci_thickness": 1.0})
    with pytest.raises(ConfigError, match=r"layers\[abs\].thickness_cm"):
        layout.build({"abs_thickness": -3.0, "abs_material": "Fe", "sci_thickness": 1.0})
    with pytest.raises(ConfigError, match="detector.layers"):
        CalorimeterLayout.from_dict({"layers": [{"name": "x", "active": True, "colour": "red"}]})
