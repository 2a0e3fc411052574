"""The reconstruction on events of the built-in simulator (issue 3, "Reconstruction test").

Two detectors, photons and pi+ (half each) with energy uniform in [1, 20] GeV as in AIDO
section 6.2, each simulated with a fixed seed:

- ``block``: a homogeneous 25 cm PbWO4 block (28 X0, 1.2 lambda_I), one read-out layer;
- ``sandwich``: a thin Pb/polystyrene sampling calorimeter, 3 x (1 cm Pb + 1 cm polystyrene)
  (5.3 X0 of lead), three read-out layers.

Fair comparison: each detector gets its own reconstruction with the same architecture
(the paper's widths), the same training settings and seed, the same number of training
events drawn from the same beam, and is scored by AIDO eq. 10 on held-out events of its
own simulation. Separate training gives each detector the best reconstruction that budget
buys, which is what "the loss of the detector" means; a joint fit would also need the two
feature vectors (1 vs 3 layers) padded into one. The design vector is a single constant
(the detector is fixed), so the pre-processing gate depends on the particle type alone.
The joint fit the SRSO loop actually does is checked separately below, on a common
six-layer layout where both detectors differ only in their design vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from detopt.detector import Layer, SamplingCalorimeter, get_material
from detopt.reconstruction import LinearCalibration, Reconstruction, ReconstructionConfig
from detopt.simulation import EventBatch, FastShowerSimulator

PARTICLES = ("gamma", "pi+")
ENERGY_RANGE_GEV = (1.0, 20.0)  # AIDO section 6.2
N_TRAIN, N_TEST = 4000, 2000
CONFIG = ReconstructionConfig(seed=0)  # paper lr 1e-3 (Adam), batch 256, 20% validation


def block() -> SamplingCalorimeter:
    return SamplingCalorimeter(layers=(Layer("block", get_material("PbWO4"), 25.0, True),), transverse_size_cm=50.0)


def sandwich() -> SamplingCalorimeter:
    layers = []
    for i in range(3):
        layers += [Layer(f"pb{i}", get_material("Pb"), 1.0, False), Layer(f"ps{i}", get_material("polystyrene"), 1.0, True)]
    return SamplingCalorimeter(layers=tuple(layers), transverse_size_cm=50.0)


@dataclass(frozen=True)
class Scored:
    net: float  # eq. 10 on held-out events, trained network
    linear: float  # eq. 10 on held-out events, a * sum(active) + b
    linear_per_particle: float  # eq. 10 on held-out events, (a, b) per particle type
    net_gamma: float  # eq. 10 of the network on held-out photons only


def _score(det: SamplingCalorimeter, seed: int) -> Scored:
    ev: EventBatch = FastShowerSimulator().simulate(
        det, n_events=N_TRAIN + N_TEST, particles=PARTICLES, energy_range=ENERGY_RANGE_GEV, seed=seed
    )
    f, c, e = ev.active_deposits, ev.particle_onehot(PARTICLES), ev.energy
    tr, te = slice(0, N_TRAIN), slice(N_TRAIN, None)
    design = np.zeros(1)  # one fixed detector: a constant design vector
    reco = Reconstruction(n_design=1, n_features=f.shape[1], n_context=len(PARTICLES))
    reco.fit(design, f[tr], c[tr], e[tr], CONFIG)
    gamma = c[te][:, 0] == 1
    return Scored(
        net=reco.loss(design, f[te], c[te], e[te]),
        linear=LinearCalibration().fit(f[tr], None, e[tr]).loss(f[te], None, e[te]),
        linear_per_particle=LinearCalibration().fit(f[tr], c[tr], e[tr]).loss(f[te], c[te], e[te]),
        net_gamma=reco.loss(design, f[te][gamma], c[te][gamma], e[te][gamma]),
    )


@pytest.fixture(scope="module")
def scores() -> dict[str, Scored]:
    return {"block": _score(block(), seed=1), "sandwich": _score(sandwich(), seed=2)}


@pytest.mark.parametrize("name", ["block", "sandwich"])
def test_network_beats_linear_calibration(scores: dict[str, Scored], name: str) -> None:
    """Lower held-out eq.-10 loss than the calibration of the summed active energy.

    It also beats one linear calibration per particle type: with the particle as context
    the network learns separate, non-linear electromagnetic and hadronic scales (pion
    response grows with energy as the shower's EM fraction does) and, in the sandwich,
    weights the layers. Measured (network vs linear, per-particle linear in brackets):
    block 0.99 vs 1.87 (1.21), sandwich 1.93 vs 2.74 (2.29).
    """
    s = scores[name]
    assert s.net < 0.85 * s.linear
    assert s.net < s.linear_per_particle


def test_loss_orders_the_detectors(scores: dict[str, Scored]) -> None:
    """The homogeneous PbWO4 block resolves energy better than the thin Pb/polystyrene sandwich.

    For photons the difference is the textbook one: a fully contained homogeneous
    calorimeter (measured loss 2.6e-3) against a 5 X0 lead sampler that leaks most of the
    shower (0.61). All particles: 0.99 against 1.93.
    """
    b, s = scores["block"], scores["sandwich"]
    assert b.net < 0.75 * s.net
    assert b.net_gamma < 0.01
    assert b.net_gamma < 0.1 * s.net_gamma


def _six_layer(absorber_cm: float, scintillator_cm: float, scintillator: str) -> SamplingCalorimeter:
    """The AIDO layout (3 x absorber + scintillator), Pb absorbers."""
    layers = []
    for i in range(3):
        layers += [
            Layer(f"absorber{i}", get_material("Pb"), absorber_cm, False),
            Layer(f"scintillator{i}", get_material(scintillator), scintillator_cm, True),
        ]
    return SamplingCalorimeter(layers=tuple(layers), transverse_size_cm=50.0)


def test_joint_fit_orders_designs_per_design_loss() -> None:
    """As in an SRSO iteration: one network for all designs, the design vector tells them apart.

    Both detectors in the six-layer AIDO layout: "block" = 3 x (0.01 cm Pb + 8.33 cm PbWO4),
    i.e. 25 cm of PbWO4; "sandwich" = 3 x (1 cm Pb + 1 cm polystyrene). Design vector:
    absorber and scintillator thickness (cm) and a PbWO4 flag. ``per_design_loss`` on
    held-out events ranks the block first and each design beats its own linear calibration.
    Measured: block 0.85 (linear 1.72), sandwich 1.87 (linear 2.70).
    """
    designs = {0: (0.01, 25.0 / 3.0, "PbWO4"), 1: (1.0, 1.0, "polystyrene")}
    n_per = 3000
    parts: list[tuple[np.ndarray, ...]] = []
    for k, (a, s, m) in designs.items():
        ev = FastShowerSimulator().simulate(
            _six_layer(a, s, m), n_events=n_per, particles=PARTICLES, energy_range=ENERGY_RANGE_GEV, seed=10 + k
        )
        vec = np.tile([a, s, float(m == "PbWO4")], (n_per, 1))
        parts.append((vec, ev.active_deposits, ev.particle_onehot(PARTICLES), ev.energy, np.full(n_per, k)))
    design, features, context, e_true, ids = (np.concatenate(x) for x in zip(*parts))
    test = (np.arange(design.shape[0]) % n_per) >= 2000  # last 1000 events of each design held out
    reco = Reconstruction(n_design=3, n_features=3, n_context=len(PARTICLES))
    reco.fit(design[~test], features[~test], context[~test], e_true[~test], CONFIG)
    got_ids, losses = reco.per_design_loss(ids[test], design[test], features[test], context[test], e_true[test])
    assert list(got_ids) == [0, 1]
    assert losses[0] < 0.75 * losses[1]
    for k in (0, 1):
        tr, te = (ids == k) & ~test, (ids == k) & test
        linear = LinearCalibration().fit(features[tr], None, e_true[tr]).loss(features[te], None, e_true[te])
        assert losses[k] < linear
