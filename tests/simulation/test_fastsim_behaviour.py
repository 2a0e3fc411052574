"""Reproducibility, voxel maps and input validation of `FastShowerSimulator`."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.detector import SamplingCalorimeter

from detopt.errors import ConfigError
from detopt.simulation import FastShowerSimulator, Simulator, VoxelGrid


def stack(layers, size_cm: float = 50.0) -> SamplingCalorimeter:
    return SamplingCalorimeter.from_layers(layers, size_cm)


AIDO_LIKE = [("Pb", 40.0, False), ("PbWO4", 5.0, True), ("Fe", 10.0, False), ("polystyrene", 5.0, True),
             ("Pb", 10.0, False), ("PbWO4", 5.0, True)]


def test_is_a_simulator() -> None:
    assert isinstance(FastShowerSimulator(), Simulator)


def test_same_seed_same_events_different_seed_independent() -> None:
    det = stack(AIDO_LIKE)
    sim = FastShowerSimulator()
    a = sim.simulate(det, 3000, ("gamma", "pi+"), (1.0, 20.0), seed=42)
    b = sim.simulate(det, 3000, ("gamma", "pi+"), (1.0, 20.0), seed=42)
    c = sim.simulate(det, 3000, ("gamma", "pi+"), (1.0, 20.0), seed=43)
    np.testing.assert_array_equal(a.deposits, b.deposits)
    np.testing.assert_array_equal(a.energy, b.energy)
    assert not np.array_equal(a.energy, c.energy)
    # Independent: the per-event totals of two seeds are uncorrelated.
    r = np.corrcoef(a.total_deposit, c.total_deposit)[0, 1]
    assert abs(r) < 4 / np.sqrt(3000)


def test_particle_mix_and_energy_range() -> None:
    ev = FastShowerSimulator().simulate(stack(AIDO_LIKE), 20_000, ("gamma", "pi+"), (1.0, 20.0), seed=1)
    frac_gamma = (ev.particle_names == "gamma").mean()
    assert frac_gamma == pytest.approx(0.5, abs=3 * 0.5 / np.sqrt(20_000))
    assert ev.energy.min() >= 1.0 and ev.energy.max() <= 20.0
    assert ev.energy.mean() == pytest.approx(10.5, abs=0.1)
    assert ev.active_deposits.shape == (20_000, 3)
    em = ev.particle_names == "gamma"
    assert np.isnan(ev.first_interaction_cm[em]).all()


def test_voxel_maps_hold_the_layer_energy() -> None:
    det = stack(AIDO_LIKE)
    grid = VoxelGrid(n_depth=24, n_radial=16)
    ev = FastShowerSimulator(grid).simulate(det, 2000, ("gamma", "pi+"), (1.0, 20.0), seed=3)
    assert ev.voxels is not None and ev.voxels.shape == (2000, 24, 16)
    np.testing.assert_allclose(ev.voxels.sum(axis=(1, 2)), ev.total_deposit, rtol=1e-4, atol=1e-6)
    assert (ev.voxels >= 0).all()
    # EM showers are narrower than hadronic ones: energy-weighted radius.
    centres = 0.5 * (grid.radial_edges_cm(50.0)[1:] + grid.radial_edges_cm(50.0)[:-1])
    radial = ev.voxels.sum(axis=1)
    r_mean = (radial * centres).sum(axis=1) / np.maximum(radial.sum(axis=1), 1e-12)
    hit = radial.sum(axis=1) > 0.05
    gamma = (ev.particle_names == "gamma") & hit
    pion = (ev.particle_names == "pi+") & hit
    assert r_mean[gamma].mean() < 0.5 * r_mean[pion].mean()


def test_voxel_mode_keeps_layer_deposits_close() -> None:
    det = stack(AIDO_LIKE)
    # the sampling noise is drawn per voxel in one mode and per layer in the other: enough events that
    # its difference (zero on average) stays below the tolerance in the small scintillator deposits
    plain = FastShowerSimulator().simulate(det, 16000, ("gamma", "pi+"), (1.0, 20.0), seed=3)
    vox = FastShowerSimulator(VoxelGrid()).simulate(det, 16000, ("gamma", "pi+"), (1.0, 20.0), seed=3)
    np.testing.assert_allclose(vox.deposits.mean(axis=0), plain.deposits.mean(axis=0), rtol=0.03, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_events": 0}, "n_events"),
        ({"n_events": -5}, "n_events"),
        ({"energy_range": (0.0, 10.0)}, "energy_range"),
        ({"energy_range": (-1.0, 10.0)}, "energy_range"),
        ({"energy_range": (10.0, 1.0)}, "energy_range"),
        ({"energy_range": (1.0, float("nan"))}, "energy_range"),
        ({"particles": ("muon",)}, "particles"),
        ({"particles": ()}, "particles"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    args = {"n_events": 10, "particles": ("gamma",), "energy_range": (1.0, 2.0), "seed": 0} | kwargs
    with pytest.raises(ConfigError) as err:
        FastShowerSimulator().simulate(stack(AIDO_LIKE), **args)
    assert err.value.field == field
    assert field in str(err.value)
