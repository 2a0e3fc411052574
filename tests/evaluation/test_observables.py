"""Observables of voxelized showers: analytic maps, the built-in simulator's physics, torch = numpy."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.detector import get_material
from detopt.errors import DataError
from detopt.evaluation import observables as obs
from detopt.simulation import GEOMETRY_A, ShowerCondition, VoxelGrid
from detopt.simulation.shower_dataset import simulate_condition

DEPTH = np.linspace(0.0, 24.0, 13)  # 12 slices of 2 cm
RINGS = 8.0 * (np.arange(9) / 8) ** 2  # 8 rings out to 8 cm, power 2


def one_voxel_map(i: int, j: int, energy: float = 5.0) -> np.ndarray:
    m = np.zeros((1, 12, 8), dtype=np.float32)
    m[0, i, j] = energy
    return m


def test_all_energy_in_one_voxel() -> None:
    m = one_voxel_map(3, 5)
    hl = obs.high_level_observables(m, DEPTH, RINGS)
    r_centre = 0.5 * (RINGS[5] + RINGS[6])
    assert hl["total_energy_gev"][0] == pytest.approx(5.0)
    assert hl["radius_cm"][0] == pytest.approx(r_centre)
    assert hl["dispersion_cm"][0] == pytest.approx(0.0, abs=1e-6)
    assert hl["long_centre_cm"][0] == pytest.approx(7.0)  # centre of slice 3: 6-8 cm
    assert hl["long_spread_cm"][0] == pytest.approx(0.0, abs=1e-6)
    # Containment interpolates in area within the ring and in depth within the slice.
    assert obs.lateral_containment(m, RINGS, RINGS[5])[0] == pytest.approx(0.0)
    assert obs.lateral_containment(m, RINGS, RINGS[6])[0] == pytest.approx(1.0)
    half_area = np.sqrt(0.5 * (RINGS[5] ** 2 + RINGS[6] ** 2))
    assert obs.lateral_containment(m, RINGS, half_area)[0] == pytest.approx(0.5)
    assert obs.longitudinal_containment(m, DEPTH, 7.5)[0] == pytest.approx(0.75)


def test_uniform_map() -> None:
    m = np.ones((2, 12, 8))
    hl = obs.high_level_observables(m, DEPTH, RINGS)
    np.testing.assert_allclose(hl["total_energy_gev"], 96.0)
    np.testing.assert_allclose(hl["long_centre_cm"], 12.0)
    # Equal weights on 12 equally spaced centres 2 cm apart: spread = 2 sqrt((12^2 - 1) / 12).
    np.testing.assert_allclose(hl["long_spread_cm"], 2.0 * np.sqrt(143 / 12))
    centres = 0.5 * (RINGS[1:] + RINGS[:-1])
    np.testing.assert_allclose(hl["radius_cm"], centres.mean())
    np.testing.assert_allclose(hl["dispersion_cm"], centres.std())
    np.testing.assert_allclose(obs.energy_per_slice(m), 8.0)
    np.testing.assert_allclose(obs.energy_per_ring(m), 12.0)
    np.testing.assert_allclose(obs.longitudinal_containment(m, DEPTH, 6.0), 0.25)


def test_per_shower_edges_equal_shared_edges_and_empty_showers_give_zero() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((5, 12, 8))
    m[2] = 0.0
    shared = obs.high_level_observables(m, DEPTH, RINGS)
    per = obs.high_level_observables(m, np.tile(DEPTH, (5, 1)), np.tile(RINGS, (5, 1)))
    for k in obs.OBSERVABLES:
        np.testing.assert_allclose(per[k], shared[k])
        assert np.isfinite(shared[k]).all() and shared[k][2] == 0.0
    # Doubling every length doubles every length observable.
    twice = obs.high_level_observables(m, 2 * DEPTH, 2 * RINGS)
    np.testing.assert_allclose(twice["radius_cm"], 2 * shared["radius_cm"])
    np.testing.assert_allclose(twice["long_spread_cm"], 2 * shared["long_spread_cm"])


def test_torch_gives_the_same_numbers_and_a_gradient() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    m = rng.random((4, 12, 8))
    ref = obs.high_level_observables(m, DEPTH, RINGS)
    mt = torch.tensor(m, requires_grad=True)
    r_max = torch.tensor(8.0, dtype=torch.float64, requires_grad=True)
    edges = r_max * torch.tensor((np.arange(9) / 8) ** 2)
    out = obs.high_level_observables(mt, torch.tensor(DEPTH), edges)
    for k in obs.OBSERVABLES:
        np.testing.assert_allclose(out[k].detach().numpy(), ref[k], rtol=1e-12)
    # <r> scales with r_max: d<r>/dr_max = <r> / r_max.
    out["radius_cm"].sum().backward()
    assert r_max.grad.item() == pytest.approx(ref["radius_cm"].sum() / 8.0, rel=1e-10)
    assert mt.grad is not None and torch.isfinite(mt.grad).all()


def test_pbwo4_electron_shower_of_the_builtin_simulator() -> None:
    """Shower maximum at the PDG t_max = ln(E/E_c) - 0.5 and ~90% within one Moliere radius."""
    mat = get_material("PbWO4")
    x0, rm = mat.radiation_length_cm, mat.moliere_radius_cm
    cond = ShowerCondition("e-", 10.0, "PbWO4", 24 * x0, 4 * rm)
    grid = VoxelGrid(n_depth=48, n_radial=16)  # slices of 0.5 X0
    maps = simulate_condition(GEOMETRY_A, cond, 1000, grid, seed=11)
    depth = np.linspace(0.0, cond.depth_cm, 49)
    rings = cond.r_max_cm * (np.arange(17) / 16) ** 2
    t_max = np.log(10.0e3 / mat.critical_energy_mev) - 0.5  # 6.44 X0
    peak = obs.bin_centres(depth)[np.argmax(obs.energy_per_slice(maps).mean(axis=0))] / x0
    assert peak == pytest.approx(t_max, abs=0.75)
    # The energy-weighted centre lies behind the maximum (the Gamma profile's tail), by less than 4 X0.
    centre = obs.longitudinal_centre(maps, depth).mean() / x0
    assert t_max < centre < t_max + 4.0
    assert obs.energy_weighted_radius(maps, rings).mean() < 0.5 * rm
    assert 0.85 < obs.lateral_containment(maps, rings, rm).mean() < 0.97


def test_shapes_are_checked() -> None:
    with pytest.raises(DataError, match="maps"):
        obs.total_energy(np.zeros((12, 8)))
    with pytest.raises(DataError, match="radial_edges_cm"):
        obs.energy_weighted_radius(np.zeros((2, 12, 8)), RINGS[:-1])
    with pytest.raises(DataError, match="depth_edges_cm"):
        obs.longitudinal_centre(np.zeros((2, 12, 8)), np.zeros((3, 13)))


def test_dataset_observables_follow_each_showers_edges() -> None:
    from detopt.simulation import generate_shower_dataset

    ds = generate_shower_dataset("A", n_conditions=3, showers_per_condition=20, grid=VoxelGrid(n_depth=12, n_radial=8))
    out = obs.dataset_observables(ds, per_slice=True)
    np.testing.assert_allclose(out["energy_ratio"], ds.maps.sum(axis=(1, 2)) / ds.column("energy_gev"), rtol=1e-6)
    np.testing.assert_allclose(out["long_centre_cm"], obs.longitudinal_centre(ds.maps, ds.depth_edges_cm()))
    np.testing.assert_allclose(sum(out[f"slice_{k:02d}_energy_gev"] for k in range(12)), out["total_energy_gev"], rtol=1e-6)
    # Every shower sits inside its own calorimeter.
    assert (out["long_centre_cm"] < ds.column("depth_cm")).all() and (out["radius_cm"] < ds.column("r_max_cm")).all()
    with pytest.raises(DataError, match="one per shower"):
        obs.dataset_observables(ds, ds.maps[:5])
