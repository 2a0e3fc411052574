"""Physics of the built-in simulator against PDG numbers (review "Passage of particles through matter",
EM cascades; review "Calorimetry"). Each test states the reference value and its tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.detector import SamplingCalorimeter

from detopt.detector import get_material
from detopt.simulation import FastShowerSimulator, VoxelGrid
from detopt.simulation.hadron_shower import mean_em_fraction


def stack(layers, size_cm: float = 50.0) -> SamplingCalorimeter:
    return SamplingCalorimeter.from_layers(layers, size_cm)


def fine_block(material: str, n_x0: float = 60.0, n_slices: int = 600) -> SamplingCalorimeter:
    """A homogeneous block cut into thin active slices, to read off longitudinal profiles."""
    x0 = get_material(material).radiation_length_cm
    return stack([(material, n_x0 * x0 / n_slices, True)] * n_slices, 200.0)


SIM = FastShowerSimulator()


def _profile(material: str, particle: str, energy: float, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    det = fine_block(material)
    ev = SIM.simulate(det, n, (particle,), (energy, energy), seed=11)
    dt = 60.0 / 600
    t = (np.arange(det.layers.__len__()) + 0.5) * dt
    return t, ev.deposits.mean(axis=0)


def _peak(t: np.ndarray, profile: np.ndarray) -> float:
    smooth = np.convolve(profile, np.ones(9) / 9, mode="same")
    return float(t[np.argmax(smooth)])


@pytest.mark.parametrize("material", ["Pb", "Fe", "PbWO4"])
@pytest.mark.parametrize("energy", [1.0, 10.0, 100.0])
def test_photon_shower_maximum_follows_pdg(material: str, energy: float) -> None:
    """t_max = ln(E/E_c) + 0.5 for photons (PDG), within 10%."""
    t, prof = _profile(material, "gamma", energy)
    expected = np.log(energy * 1e3 / get_material(material).critical_energy_mev) + 0.5
    assert _peak(t, prof) == pytest.approx(expected, rel=0.10)


@pytest.mark.parametrize("material", ["Pb", "PbWO4"])
def test_electron_shower_maximum_has_c_minus_half(material: str) -> None:
    """t_max = ln(E/E_c) - 0.5 for electrons at 10 GeV, within 10%, one X0 before photons."""
    t, prof_e = _profile(material, "e-", 10.0)
    expected = np.log(10e3 / get_material(material).critical_energy_mev) - 0.5
    assert _peak(t, prof_e) == pytest.approx(expected, rel=0.10)
    _, prof_g = _profile(material, "gamma", 10.0)
    assert _peak(t, prof_g) - _peak(t, prof_e) == pytest.approx(1.0, abs=0.35)


@pytest.mark.parametrize("material", ["Pb", "Fe", "PbWO4"])
@pytest.mark.parametrize("energy", [10.0, 100.0])
def test_95_percent_longitudinal_containment(material: str, energy: float) -> None:
    """95% of the energy within t_max + 0.08 Z + 9.6 X0 (PDG), within 10% (10 and 100 GeV)."""
    t, prof = _profile(material, "e-", energy)
    m = get_material(material)
    t_max = np.log(energy * 1e3 / m.critical_energy_mev) - 0.5
    cum = np.cumsum(prof) / energy
    t95 = t[np.searchsorted(cum, 0.95)]
    assert t95 == pytest.approx(t_max + 0.08 * m.z_eff + 9.6, rel=0.10)


@pytest.mark.parametrize("material", ["Pb", "Fe", "PbWO4"])
@pytest.mark.parametrize("energy", [10.0, 100.0])
def test_lateral_containment_in_moliere_radii(material: str, energy: float) -> None:
    """About 90% of the energy within one Moliere radius (within 5 points) and 99% within 3.5 (within 2),
    integrated over the depth of the shower."""
    m = get_material(material)
    rm = m.moliere_radius_cm
    det = stack([(material, 40 * m.radiation_length_cm, True)], size_cm=200.0)
    grid = VoxelGrid(n_depth=40, n_radial=350, r_max_cm=10 * rm, radial_power=1.0)
    ev = FastShowerSimulator(grid).simulate(det, 1500, ("e-",), (energy, energy), seed=2)
    edges = grid.radial_edges_cm(200.0)
    cum = np.concatenate([[0.0], np.cumsum(ev.voxels.mean(axis=0).sum(axis=0))]) / ev.deposits.mean()
    assert np.interp(rm, edges, cum) == pytest.approx(0.90, abs=0.05)
    assert np.interp(3.5 * rm, edges, cum) == pytest.approx(0.99, abs=0.02)


def test_pion_non_interaction_probability() -> None:
    """P(no inelastic interaction) = exp(-sum d_i / lambda_pi,i) within 3 binomial sigma on 10^4 events."""
    det = stack([("Pb", 20.0, False), ("polystyrene", 5.0, True), ("Fe", 20.0, True)])
    n = 10_000
    ev = SIM.simulate(det, n, ("pi+",), (1.0, 20.0), seed=5)
    p = np.exp(-det.pion_interaction_lengths)
    observed = np.isnan(ev.first_interaction_cm).mean()
    assert abs(observed - p) < 3 * np.sqrt(p * (1 - p) / n)
    # And the interaction depths are exponential: in the first Pb layer, P = 1 - exp(-20 / 19.93).
    in_first = (ev.first_interaction_cm < 20.0).mean()
    p1 = 1 - np.exp(-20.0 / get_material("Pb").pion_interaction_length_cm)
    assert abs(in_first - p1) < 3 * np.sqrt(p1 * (1 - p1) / n)


def test_pion_em_fraction_rises_with_energy() -> None:
    """Groom: f_em = 1 - (E/1 GeV)^(-0.18); 0.34 at 10 GeV, 0.56 at 100 GeV; so a non-compensating
    block's pion response (visible / E) rises with energy."""
    assert mean_em_fraction(np.array([10.0]))[0] == pytest.approx(1 - 10**-0.18, rel=1e-9)
    assert mean_em_fraction(np.array([100.0]))[0] == pytest.approx(0.562, abs=0.002)
    det = stack([("Fe", 300.0, True)], size_cm=300.0)
    responses = []
    for e in (2.0, 10.0, 50.0):
        ev = SIM.simulate(det, 3000, ("pi+",), (e, e), seed=7)
        responses.append(float((ev.total_deposit / ev.energy).mean()))
    assert responses[0] < responses[1] < responses[2]
    assert responses[2] - responses[0] > 0.05


def test_thin_low_z_layer_samples_rather_than_absorbs() -> None:
    """1 cm polystyrene behind 20 X0 of Pb gets far less energy than 1 cm PbWO4 at the same place:
    the ratio follows the stopping powers (2.05 vs 10.2 MeV/cm) times the track flux."""
    deposits = {}
    for active in ("polystyrene", "PbWO4"):
        det = stack([("Pb", 20 * 0.5612, False), (active, 1.0, True), ("Pb", 20.0, False)])
        ev = SIM.simulate(det, 4000, ("gamma",), (10.0, 10.0), seed=1)
        deposits[active] = ev.deposits[:, 1].mean()
    assert deposits["polystyrene"] < 0.35 * deposits["PbWO4"]
    assert deposits["polystyrene"] > 0.0


def test_energy_conservation() -> None:
    """The total deposit never exceeds the beam energy, for any particle and detector."""
    dets = [
        stack([("PbWO4", 30.0, True)]),
        stack([("Pb", 0.2, False), ("polystyrene", 0.5, True)] * 40),
        stack([("Pb", 40.0, False), ("PbWO4", 5.0, True), ("Fe", 10.0, False), ("polystyrene", 5.0, True)]),
    ]
    for det in dets:
        ev = SIM.simulate(det, 5000, ("gamma", "e-", "pi+"), (1.0, 100.0), seed=3)
        assert (ev.total_deposit <= ev.energy * (1 + 1e-12)).all()
        assert (ev.deposits >= 0).all()


def test_homogeneous_block_resolves_better_than_sandwich() -> None:
    """A 25 cm PbWO4 block has a better photon energy resolution than a Pb/polystyrene sandwich of the
    same depth (PDG sampling term ~ 2.7% sqrt(d/f_samp) / sqrt(E))."""
    hom = stack([("PbWO4", 25.0, True)])
    sandwich = stack([("Pb", 0.5, False), ("polystyrene", 0.5, True)] * 25)
    for e in (2.0, 10.0):
        res = {}
        for name, det in (("hom", hom), ("sandwich", sandwich)):
            a = SIM.simulate(det, 4000, ("gamma",), (e, e), seed=4).active_deposits.sum(axis=1)
            res[name] = a.std() / a.mean()
        assert res["hom"] < 0.5 * res["sandwich"]
    # Sampling term of the sandwich: PDG 2.7% sqrt(5 mm / 0.139) = 16%/sqrt(E); accept 10-30%.
    a = SIM.simulate(sandwich, 4000, ("gamma",), (10.0, 10.0), seed=4).active_deposits.sum(axis=1)
    assert 0.10 < (a.std() / a.mean()) * np.sqrt(10.0) < 0.30


def test_thin_stacks_leak() -> None:
    """Energy leaks out of short stacks: 5 X0 of Pb contains far less of a 10 GeV shower than 30 X0."""
    short = stack([("Pb", 5 * 0.5612, True)])
    long = stack([("Pb", 30 * 0.5612, True)])
    e_short = SIM.simulate(short, 2000, ("e-",), (10.0, 10.0), seed=1).total_deposit.mean()
    e_long = SIM.simulate(long, 2000, ("e-",), (10.0, 10.0), seed=1).total_deposit.mean()
    assert e_short < 0.5 * e_long
    assert e_long > 0.95 * 10.0


def test_homogeneous_block_reads_the_same_however_segmented() -> None:
    """A PbWO4 block read out as 1, 25 or 250 layers has the same response and resolution: sampling
    fluctuations only move energy between layers, they do not create or destroy it."""
    results = []
    for n in (1, 25, 250):
        det = stack([("PbWO4", 25.0 / n, True)] * n)
        a = SIM.simulate(det, 3000, ("gamma",), (5.0, 5.0), seed=3).active_deposits.sum(axis=1)
        results.append((a.mean(), a.std() / a.mean()))
    means, widths = np.array(results).T
    assert np.ptp(means) / means.mean() < 0.002
    assert np.ptp(widths) / widths.mean() < 0.05


@pytest.mark.parametrize(
    ("passive", "d_passive", "active", "d_active"),
    [("Pb", 0.5, "polystyrene", 0.5), ("Fe", 2.0, "polystyrene", 0.5), ("Pb", 0.2, "LAr", 0.4)],
)
def test_sampling_term_follows_pdg(passive: str, d_passive: float, active: str, d_active: float) -> None:
    """Stochastic term of electron showers in sandwiches vs PDG 2.7% sqrt(d[mm] / f_samp), within 20%."""
    det = stack([(passive, d_passive, False), (active, d_active, True)] * int(23 / (d_passive / get_material(passive).radiation_length_cm)), 100.0)
    s_a = d_active * get_material(active).dedx_min_mev_cm
    f_samp = s_a / (s_a + d_passive * get_material(passive).dedx_min_mev_cm)
    pdg = 0.027 * np.sqrt(d_active * 10 / f_samp)
    res = []
    for e in (2.0, 20.0):
        a = SIM.simulate(det, 4000, ("e-",), (e, e), seed=3).active_deposits.sum(axis=1)
        res.append(a.std() / a.mean())
    stochastic = np.sqrt((res[0] ** 2 - res[1] ** 2) / (1 / 2.0 - 1 / 20.0))
    assert stochastic == pytest.approx(pdg, rel=0.20)
