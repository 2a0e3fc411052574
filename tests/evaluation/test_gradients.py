"""Finite-difference gradients of design utilities by simulation (common random numbers), and the
comparison with autograd."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.detector import get_material
from detopt.errors import ConfigError, DataError
from detopt.evaluation import gradients as grad
from detopt.simulation import GEOMETRY_A, ShowerCondition, VoxelGrid

GRID = VoxelGrid(n_depth=12, n_radial=8)
PBWO4 = get_material("PbWO4")


def toy_simulate(design, seed: int) -> np.ndarray:
    """Maps whose summed energy is 2 depth + 0.5 r_max plus seed-driven noise of width 1."""
    rng = np.random.default_rng(seed)
    total = 2.0 * design["depth_cm"] + 0.5 * design["r_max_cm"] + rng.normal(size=50)
    maps = np.zeros((50, 12, 8))
    maps[:, 0, 0] = total
    return maps


def mean_energy(maps, design) -> float:
    return float(maps.sum(axis=(1, 2)).mean())


def test_fd_recovers_a_known_gradient_and_crn_removes_the_noise() -> None:
    design = {"depth_cm": 10.0, "r_max_cm": 3.0}
    crn = grad.finite_difference_utility_gradient(mean_energy, toy_simulate, design, n_repeats=6, seed=1)
    np.testing.assert_allclose(crn.mean, [2.0, 0.5], rtol=1e-9)
    np.testing.assert_allclose(crn.stderr, 0.0, atol=1e-9)
    assert crn.utility == pytest.approx(21.5, abs=0.5)
    indep = grad.finite_difference_utility_gradient(
        mean_energy, toy_simulate, design, n_repeats=6, seed=1, common_random_numbers=False
    )
    assert indep.minus_seeds != indep.seeds
    assert (indep.stderr > 0.1).all()  # noise 1/sqrt(50) per side over a step of 2 x 0.05 x theta
    assert indep.as_dict()["n_repeats"] == 6 and crn.as_dict()["common_random_numbers"] is True


def test_builtin_simulator_shares_its_random_stream_between_neighbouring_designs() -> None:
    """Containment grows with depth; with CRN the FD variance is far smaller than without."""
    base = ShowerCondition("e-", 20.0, "PbWO4", 15 * PBWO4.radiation_length_cm, 2.0 * PBWO4.moliere_radius_cm)
    simulate = grad.shower_design_simulator(GEOMETRY_A, base, 200, GRID)
    utility = grad.make_utility("containment", n_depth=12, n_radial=8)
    design = {"depth_cm": base.depth_cm, "energy_gev": 20.0}
    kw = dict(parameters=["depth_cm"], n_repeats=4, seed=3)
    crn = grad.finite_difference_utility_gradient(utility, simulate, design, **kw)
    indep = grad.finite_difference_utility_gradient(utility, simulate, design, common_random_numbers=False, **kw)
    assert crn.mean[0] > 10 * crn.stderr[0] > 0  # deeper block, more energy contained (per cm)
    assert grad.crn_variance_ratio(indep, crn)[0] > 10.0
    assert 0.7 < crn.utility < 0.95


def test_utilities_match_their_definitions_and_differentiate_through_the_design() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    maps = rng.gamma(2.0, 1.0, size=(30, 12, 8))
    e = maps.sum(axis=(1, 2))
    assert grad.relative_energy_resolution(maps) == pytest.approx(e.std(ddof=1) / e.mean())
    assert grad.containment_fraction(maps, 400.0) == pytest.approx(e.mean() / 400.0)
    lateral = grad.make_utility("lateral_containment", n_depth=12, n_radial=8, radius_cm=1.0)
    design = {"depth_cm": 20.0, "r_max_cm": 3.0}
    r_max = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    u = lateral(torch.tensor(maps), {"depth_cm": 20.0, "r_max_cm": r_max})
    assert u.item() == pytest.approx(lateral(maps, design))
    u.backward()
    # Maps held fixed, widening the rings moves energy outwards: the autograd derivative equals the
    # numerical derivative of the same code.
    h = 1e-5
    numeric = (lateral(maps, {**design, "r_max_cm": 3.0 + h}) - lateral(maps, {**design, "r_max_cm": 3.0 - h})) / (2 * h)
    assert r_max.grad.item() == pytest.approx(numeric, rel=1e-6) and numeric < 0


def test_compare_gradients() -> None:
    same = grad.compare_gradients(np.array([1.0, -2.0]), np.array([1.1, -1.8]), np.array([0.1, 0.1]))
    assert (same.sign_agreement, same.n_significant, same.n_agree) == (1.0, 2, 2)
    assert same.cosine == pytest.approx(np.dot([1, -2], [1.1, -1.8]) / np.sqrt(5 * (1.21 + 3.24)))
    # The second component is not significant (|FD| < 2 sigma): its wrong sign does not count.
    c = grad.compare_gradients(np.array([[1.0, 1.0], [-1.0, 0.5]]), np.array([[2.0, -0.1], [1.0, 0.4]]),
                               np.array([[0.1, 0.1], [0.1, 0.1]]))
    assert (c.n_significant, c.n_agree, c.sign_agreement) == (3, 2, pytest.approx(2 / 3))
    assert len(c.cosines) == 2 and c.cosines[1] < 0
    assert np.isnan(grad.compare_gradients(np.ones(2), np.ones(2), np.ones(2)).sign_agreement)
    scaled = grad.compare_gradients(np.array([1.0, 0.0]), np.array([1.0, 1.0]), np.ones(2) * 0.01, scale=np.array([1.0, 0.0]))
    assert scaled.cosine == pytest.approx(1.0)


def test_bad_input() -> None:
    with pytest.raises(DataError, match="shapes differ"):
        grad.compare_gradients(np.ones(2), np.ones(3), np.ones(3))
    with pytest.raises(ConfigError, match="n_repeats"):
        grad.finite_difference_utility_gradient(mean_energy, toy_simulate, {"depth_cm": 1.0}, n_repeats=1)
    with pytest.raises(ConfigError, match="parameters"):
        grad.finite_difference_utility_gradient(mean_energy, toy_simulate, {"depth_cm": 1.0}, ["r_max_cm"])
    with pytest.raises(ConfigError, match="utility"):
        grad.make_utility("speed", n_depth=2, n_radial=2)
    base = ShowerCondition("e-", 20.0, "PbWO4", 10.0, 3.0)
    with pytest.raises(ConfigError, match="design"):
        grad.shower_design_simulator(GEOMETRY_A, base, 10, GRID)({"x0_cm": 1.0}, 0)


def test_layer_thickness_gradient_of_the_sampling_geometry() -> None:
    """Geometry B: depth_cm scales every absorber and scintillator layer; thicker layers, more of
    the shower contained, and more visible energy (the utility is the visible share of the beam)."""
    from detopt.simulation import GEOMETRY_B

    base = ShowerCondition("e-", 20.0, "Pb", 10.0, 4.0)  # 12 cells of 0.56 cm Pb + 0.28 cm scintillator
    simulate = grad.shower_design_simulator(GEOMETRY_B, base, 200, GRID)
    utility = grad.make_utility("containment", n_depth=12, n_radial=8)
    fd = grad.finite_difference_utility_gradient(utility, simulate, {"depth_cm": 10.0, "energy_gev": 20.0},
                                                 ["depth_cm"], n_repeats=3, seed=0)
    assert 0.03 < fd.utility < 0.08  # visible share ~ the sampling fraction times the containment
    assert fd.mean[0] > 3 * fd.stderr[0] > 0
