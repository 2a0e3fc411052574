"""Synthetic calorimeter-like data for the reconstruction tests (no simulator needed).

Two design parameters scale the sampling fractions of three read-out layers; pions see
60% of the photon response (a non-compensating calorimeter), so the particle type
(context) matters; each feature fluctuates by 5% per event. A good reconstruction
inverts the design- and particle-dependent calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

#: Pion response relative to photons in the synthetic calorimeter (dimensionless, e/h-like).
PION_RESPONSE = 0.6
#: Relative per-layer fluctuation of the synthetic features.
FEATURE_NOISE = 0.05


@dataclass(frozen=True)
class Synthetic:
    design: np.ndarray  # n x 2
    features: np.ndarray  # n x 3, GeV
    context: np.ndarray  # n x 2, one-hot (gamma, pi+)
    e_true: np.ndarray  # n, GeV

    def slice(self, sl: slice) -> "Synthetic":
        return Synthetic(self.design[sl], self.features[sl], self.context[sl], self.e_true[sl])


def sampling_fractions(design: np.ndarray) -> np.ndarray:
    """Per-layer sampling fraction of the synthetic detector, ``n x 3``."""
    return np.stack([0.1 * design[:, 0], 0.05 * design[:, 1], np.full(design.shape[0], 0.02)], axis=1)


def make_synthetic(n: int, seed: int) -> Synthetic:
    rng = np.random.default_rng(seed)
    design = rng.uniform(0.5, 2.0, (n, 2))
    e_true = rng.uniform(1.0, 20.0, n)
    particle = rng.integers(0, 2, n)
    context = np.eye(2)[particle]
    response = np.where(particle == 1, PION_RESPONSE, 1.0)
    noise = np.clip(rng.normal(1.0, FEATURE_NOISE, (n, 3)), 0.0, None)
    features = e_true[:, None] * response[:, None] * sampling_fractions(design) * noise
    return Synthetic(design, features, context, e_true)


@pytest.fixture(scope="session")
def synthetic_train() -> Synthetic:
    return make_synthetic(3000, seed=0)


@pytest.fixture(scope="session")
def synthetic_test() -> Synthetic:
    return make_synthetic(2000, seed=1)
