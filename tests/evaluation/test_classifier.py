"""Classifier AUC of simulation vs a surrogate on high-level observables."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.errors import DataError
from detopt.evaluation import classifier
from detopt.evaluation import observables as obs
from detopt.simulation import GEOMETRY_A, ShowerCondition, VoxelGrid
from detopt.simulation.shower_dataset import simulate_condition

GRID = VoxelGrid(n_depth=12, n_radial=8)
COND = ShowerCondition("e-", 20.0, "PbWO4", 20.0, 4.0)
DEPTH = np.linspace(0.0, COND.depth_cm, 13)
RINGS = COND.r_max_cm * (np.arange(9) / 8) ** 2


def features(seed: int, n: int = 2000) -> dict[str, np.ndarray]:
    return obs.high_level_observables(simulate_condition(GEOMETRY_A, COND, n, GRID, seed), DEPTH, RINGS)


def test_roc_auc_exact_values() -> None:
    assert classifier.roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert classifier.roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert classifier.roc_auc(np.ones(6), np.array([0, 1, 0, 1, 0, 1])) == 0.5
    # One inversion among the 2 x 2 pairs, and one tie counted 1/2: (4 - 1 - 0.5) / 4.
    assert classifier.roc_auc(np.array([0.1, 0.5, 0.3, 0.5]), np.array([0, 0, 1, 1])) == pytest.approx(0.625)


def test_two_simulations_of_the_same_condition_are_indistinguishable() -> None:
    res = classifier.classifier_auc(features(1), features(2), seed=0)
    assert res.n_train == 2000 and res.n_test == 2000
    assert res.features == obs.OBSERVABLES
    assert abs(res.auc - 0.5) < 0.05
    small = {k: v[:200] for k, v in features(1).items()}, {k: v[:200] for k, v in features(2).items()}
    assert classifier.classifier_auc(*small, seed=3).auc == classifier.classifier_auc(*small, seed=3).auc  # seeded


def test_a_clearly_wrong_surrogate_is_found() -> None:
    sim = features(1)
    wrong = {k: v.copy() for k, v in features(2).items()}
    wrong["total_energy_gev"] *= 1.05  # a 5% energy scale error, ~4 times the resolution
    wrong["radius_cm"] *= 1.10
    assert classifier.classifier_auc(sim, wrong, seed=0).auc > 0.9


def test_bad_input() -> None:
    with pytest.raises(DataError, match="missing"):
        classifier.classifier_auc({"a": np.ones(10)}, {"b": np.ones(10)})
    with pytest.raises(DataError, match="features"):
        classifier.classifier_auc(np.ones((10, 2)), np.ones((10, 3)))
    with pytest.raises(DataError, match="at least 4"):
        classifier.classifier_auc(np.ones((2, 2)), np.ones((10, 2)))
