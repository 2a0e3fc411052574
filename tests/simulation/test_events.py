"""`EventBatch` Parquet and ROOT input-output."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.detector import SamplingCalorimeter

from detopt.errors import DataError
from detopt.simulation import EventBatch, FastShowerSimulator, VoxelGrid


def stack(layers, size_cm: float = 50.0) -> SamplingCalorimeter:
    return SamplingCalorimeter.from_layers(layers, size_cm)


DET = stack([("Pb", 2.0, False), ("polystyrene", 1.0, True)] * 3)


def test_parquet_round_trip_keeps_events_design_and_seed(tmp_path) -> None:
    ev = FastShowerSimulator(VoxelGrid(n_depth=6, n_radial=4)).simulate(DET, 500, ("gamma", "pi+"), (1.0, 5.0), seed=8)
    path = ev.to_parquet(tmp_path / "ev.parquet")
    back = EventBatch.from_parquet(path)
    np.testing.assert_array_equal(back.deposits, ev.deposits)
    np.testing.assert_array_equal(back.particle, ev.particle)
    np.testing.assert_array_equal(back.first_interaction_cm, ev.first_interaction_cm)
    np.testing.assert_allclose(back.voxels, ev.voxels)
    assert back.layer_names == ev.layer_names and back.active == ev.active
    assert back.metadata["seed"] == 8
    assert back.metadata["detector"]["layers"][1]["material"] == "polystyrene"
    assert not list(tmp_path.glob(".*.tmp"))


def test_corrupt_parquet_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="bad.parquet"):
        EventBatch.from_parquet(bad)
    with pytest.raises(DataError, match="no such file"):
        EventBatch.from_parquet(tmp_path / "missing.parquet")


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(DataError, match="deposits"):
        EventBatch(
            particle=np.zeros(3, dtype=np.int8), energy=np.ones(3), deposits=np.ones((3, 2)),
            first_interaction_cm=np.full(3, np.nan), layer_names=("a", "b", "c"), active=(True, False, True),
        )


def test_concatenate_and_select() -> None:
    sim = FastShowerSimulator()
    a = sim.simulate(DET, 100, ("gamma",), (1.0, 2.0), seed=1)
    b = sim.simulate(DET, 50, ("pi+",), (1.0, 2.0), seed=2)
    both = EventBatch.concatenate([a, b])
    assert len(both) == 150
    assert (both.select(both.particle_names == "pi+").energy == b.energy).all()


def test_reads_a_users_root_file(tmp_path) -> None:
    uproot = pytest.importorskip("uproot")
    path = tmp_path / "sim.root"
    with uproot.recreate(path) as f:
        f["events"] = {
            "edep_a": np.array([100.0, 200.0]), "edep_b": np.array([10.0, 20.0]),
            "energy": np.array([1000.0, 2000.0]), "particle": np.array([22, 211], dtype=np.int32),
        }
    ev = EventBatch.from_root(path, "events", ["edep_a", "edep_b"], [False, True], energy_scale=1e-3)
    np.testing.assert_allclose(ev.energy, [1.0, 2.0])
    np.testing.assert_allclose(ev.active_deposits[:, 0], [0.01, 0.02])
    assert list(ev.particle_names) == ["gamma", "pi+"]
    with pytest.raises(DataError, match="missing branches"):
        EventBatch.from_root(path, "events", ["edep_x"], [True])
