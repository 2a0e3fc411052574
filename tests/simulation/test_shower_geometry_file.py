"""Shower geometries of layers in cm from a YAML file: W / Si, user materials, geometry B unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detopt.errors import ConfigError
from detopt.simulation import VoxelGrid
from detopt.simulation.shower_dataset import (
    CellSampling, ShowerCondition, ShowerDataset, generate_shower_dataset, load_shower_geometry,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shower_geometry_wsi.yaml"
CRYSTAL = Path(__file__).resolve().parents[2] / "examples" / "shower_geometry_cef3.yaml"


def test_w_si_example_has_the_hand_computed_effective_x0_and_sampling_fraction() -> None:
    geo = load_shower_geometry(EXAMPLE)
    assert isinstance(geo.sampling, CellSampling) and geo.sampling.thickness_cm == pytest.approx(0.38)
    mat, f_samp = geo.effective("W")
    # PDG: W rho 19.30 g/cm3, X0 0.3504 cm, dE/dx_min 22.10 MeV/cm; Si rho 2.329, X0 9.370 cm, dE/dx 3.876 MeV/cm.
    m_w, m_si = 0.35 * 19.30, 0.03 * 2.329  # g/cm2 per cell
    x0_g = 1.0 / ((m_w / (m_w + m_si)) / (0.3504 * 19.30) + (m_si / (m_w + m_si)) / (9.370 * 2.329))
    x0_cm = x0_g / ((m_w + m_si) / 0.38)
    assert mat.radiation_length_cm == pytest.approx(x0_cm, rel=1e-9)
    assert mat.radiation_length_cm == pytest.approx(0.3792, abs=1e-4)
    assert f_samp == pytest.approx(0.03 * 3.876 / (0.35 * 22.10 + 0.03 * 3.876), rel=1e-12)
    assert f_samp == pytest.approx(0.01481, abs=1e-5)


def test_w_si_data_set_has_the_grid_and_the_visible_energy_of_the_sampling_fraction(tmp_path: Path) -> None:
    geo = load_shower_geometry(EXAMPLE)
    mat, f_samp = geo.effective("W")
    # 25 X0 deep and 4 Moliere radii wide: under ~2% of a 20-50 GeV electron shower leaks out.
    conds = [ShowerCondition("e-", e, "W", 25 * mat.radiation_length_cm, 4 * mat.moliere_radius_cm) for e in (20.0, 50.0)]
    data = generate_shower_dataset(geo, conditions=conds, showers_per_condition=40, grid=VoxelGrid(n_depth=12, n_radial=8), seed=3)
    assert data.maps.shape == (80, 12, 8)
    # Whole cells, the same number per slice: round(25 X0 / (12 x 0.38 cm)) = 2 cells per slice, 24 cells.
    assert np.allclose(data.column("depth_cm"), 24 * 0.38)
    assert (data.maps.sum(axis=2) > 0).all()  # every slice holds silicon deposits
    visible = data.maps.sum(axis=(1, 2)) / data.column("energy_gev")
    # Visible / E = e/mip x f_mip x containment. Leakage is ~2% and the fast simulation shares a
    # shower's energy by X0 dE/dx (e/mip ~ 1, where Geant4 gives 0.6-0.9 for high-Z / silicon), so
    # the ratio lies between 0.8 and 1.0 of f_mip; energy conservation caps it at 1.
    ratio = float(visible.mean()) / f_samp
    assert 0.8 < ratio <= 1.0, ratio
    path = data.to_parquet(tmp_path / "wsi.parquet")
    back = ShowerDataset.from_parquet(path)
    assert load_shower_geometry(EXAMPLE) == type(geo).model_validate(back.metadata["geometry"])


def test_several_active_layers_and_a_user_material_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "materials:\n  - {name: MyScint, density_g_cm3: 1.05, radiation_length_cm: 42.0, nuclear_interaction_length_cm: 77.0,\n"
        "     critical_energy_mev: 94.0, dedx_min_mev_cm: 2.0, z_eff: 5.6, z_over_a: 0.54}\n"
    )
    (tmp_path / "geo.yaml").write_text(
        "name: Pb-two-readouts\nmaterials: [Pb]\nmaterials_file: mine.yaml\nsampling:\n  cells_per_slice: 1\n  cell:\n"
        "    - {material: absorber, thickness_cm: 0.5}\n    - {material: MyScint, thickness_cm: 0.2, active: true}\n"
        "    - {material: Si, thickness_cm: 0.05, active: true}\n"
    )
    geo = load_shower_geometry(tmp_path / "geo.yaml")
    _, f_samp = geo.effective("Pb")
    # Pb dE/dx_min 12.74 MeV/cm (PDG); the two active layers add up.
    assert f_samp == pytest.approx((0.2 * 2.0 + 0.05 * 3.876) / (0.5 * 12.74 + 0.2 * 2.0 + 0.05 * 3.876), rel=1e-3)
    grid = VoxelGrid(n_depth=5, n_radial=3)
    data = generate_shower_dataset(geo, energies_gev=[10.0], particles="e-", showers_per_condition=5, grid=grid, seed=1)
    assert data.maps.shape == (5, 5, 3) and np.allclose(data.column("depth_cm"), 5 * 0.75)
    sim_grid = geo.simulation_grid(grid)
    assert sim_grid.n_depth == 15 and sim_grid.depth_edges_cm(3.75)[1:4] == pytest.approx([0.5, 0.7, 0.75])
    assert geo.model_dump()["extra_materials"][0]["name"] == "MyScint"  # provenance without the file


def test_cef3_example_is_a_homogeneous_crystal_with_the_pdg_moliere_radius() -> None:
    geo = load_shower_geometry(CRYSTAL)
    assert geo.sampling is None and geo.materials == ("CeF3",)
    mat, f_samp = geo.effective("CeF3")
    # PDG crystal table: X0 1.70 cm, R_M 2.41 cm; the file gives E_c, from which R_M = E_s X0 / E_c (eq. 34.37).
    assert f_samp == 1.0 and mat.radiation_length_cm == 1.70
    assert mat.moliere_radius_cm == pytest.approx(2.41, rel=2e-3)
    data = generate_shower_dataset(geo, energies_gev=[20.0], particles="e-", showers_per_condition=20,
                                   grid=VoxelGrid(n_depth=12, n_radial=8), seed=2)
    row = dict(zip(data.condition_names, data.conditions[0]))
    assert row["x0_cm"] == 1.70 and row["sampling_fraction"] == 1.0
    assert 15 * 1.70 <= row["depth_cm"] <= 30 * 1.70
    # a homogeneous block 15-30 X0 deep and >= 1.5 R_M wide contains most of a 20 GeV shower
    assert 0.7 < float(data.maps.sum(axis=(1, 2)).mean()) / 20.0 <= 1.0


def test_geometry_b_maps_are_unchanged_for_a_fixed_seed() -> None:
    """Numbers recorded with the code before geometries of layers in cm existed (and with the current
    simulator physics: the maps change when the simulator is recalibrated, not when geometries change)."""
    data = generate_shower_dataset("B", n_conditions=3, showers_per_condition=4, grid=VoxelGrid(n_depth=6, n_radial=4),
                                   seed=11, particles=("e-", "gamma"))
    before = [3.6832351684570312, 4.0482635498046875, 3.8807730674743652, 3.4521732330322266, 1.6459190845489502,
              1.6906306743621826, 1.8574261665344238, 1.7044689655303955, 4.905180931091309, 5.334415435791016,
              5.017790794372559, 4.843059062957764]
    assert data.maps.sum(axis=(1, 2)) == pytest.approx(before, rel=1e-6)
    assert data.maps[0, :2].ravel() == pytest.approx([0.2938799560070038, 0.047261811792850494, 0.007585466373711824, 0.01027592457830906,
                                                      0.618021547794342, 0.33131688833236694, 0.060091227293014526, 0.02220139279961586], rel=1e-6)
    assert data.column("depth_cm")[::4] == pytest.approx([20.904782044815263, 16.33398827245921, 22.288885109434577])
    assert data.metadata["geometry"] == {"name": "B", "materials": ["Pb"], "depth_x0_range": [15.0, 30.0],
                                         "r_max_moliere_range": [1.5, 4.0],
                                         "sampling": {"active": "polystyrene", "absorber_units": 2, "active_units": 1}}
    assert data.metadata["grid"] == {"n_depth": 6, "n_radial": 4, "r_max_cm": None, "radial_power": 2.0}


@pytest.mark.parametrize(("text", "field", "words"), [
    ("sampling: {cell: [{material: absorber, thickness_cm: 0}, {material: Si, thickness_cm: 0.03, active: true}]}",
     "geometry.sampling.cell[0].thickness_cm", "> 0 cm"),
    ("sampling: {cell: [{material: absorber, thickness_cm: 0.3}, {material: Si, thickness_cm: 0.03}]}",
     "geometry.sampling.cell", "active"),
    ("sampling: {cells_per_slice: 0, cell: [{material: Si, thickness_cm: 0.03, active: true}]}",
     "geometry.sampling.cells_per_slice", "greater than or equal to 1"),
    ("sampling: {cell: [{material: Kryptonite, thickness_cm: 0.03, active: true}]}",
     "geometry.sampling.cell[0].material", "Kryptonite"),
])
def test_bad_cells_name_the_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(f"name: g\nmaterials: [W]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        load_shower_geometry(path)
    assert info.value.field == field and words in info.value.message
