"""Shower data sets: physical conditions, geometries A and B, generation, Parquet, splits."""

from __future__ import annotations

import time

import numpy as np
import pytest

from detopt.detector import get_material
from detopt.errors import ConfigError, DataError
from detopt.simulation import (
    GEOMETRY_A, GEOMETRY_B, PARTICLES, SHOWER_CONDITIONS, FastShowerSimulator, ShowerCondition, ShowerDataset,
    ShowerGeometry, VoxelGrid, generate_shower_dataset,
)
from detopt.simulation.shower_dataset import (
    condition_vector, draw_shower_conditions, get_geometry, grid_shower_conditions, simulate_condition,
)

GRID = VoxelGrid(n_depth=12, n_radial=8)


@pytest.fixture(scope="module")
def small_set() -> ShowerDataset:
    return generate_shower_dataset("A", n_conditions=12, showers_per_condition=40, grid=GRID, seed=5)


def test_condition_columns_are_the_contract() -> None:
    assert SHOWER_CONDITIONS[0] == "energy_gev"
    assert [f"particle_{p}" for p in PARTICLES] == list(SHOWER_CONDITIONS[1:1 + len(PARTICLES)])
    for name in ("x0_cm", "moliere_radius_cm", "critical_energy_mev", "density_g_cm3", "depth_cm", "r_max_cm",
                 "sampling_fraction"):
        assert name in SHOWER_CONDITIONS


def test_homogeneous_condition_vector_holds_the_pdg_properties_of_pbwo4() -> None:
    v = dict(zip(SHOWER_CONDITIONS, condition_vector(GEOMETRY_A, ShowerCondition("e-", 20.0, "PbWO4", 22.0, 3.5))))
    assert v["x0_cm"] == pytest.approx(0.8903)
    assert v["moliere_radius_cm"] == pytest.approx(1.959, abs=0.002)  # PDG table: 1.959 cm
    assert v["critical_energy_mev"] == pytest.approx(9.64)
    assert v["density_g_cm3"] == pytest.approx(8.30)
    assert (v["energy_gev"], v["depth_cm"], v["r_max_cm"], v["sampling_fraction"]) == (20.0, 22.0, 3.5, 1.0)
    assert (v["particle_e-"], v["particle_gamma"], v["particle_pi+"]) == (1.0, 0.0, 0.0)


def test_sampling_geometry_has_effective_properties_of_the_pb_scintillator_mixture() -> None:
    pb, ps = get_material("Pb"), get_material("polystyrene")
    v = dict(zip(SHOWER_CONDITIONS, condition_vector(GEOMETRY_B, ShowerCondition("gamma", 10.0, "Pb", 20.0, 4.0))))
    # Thickness weights 2 : 1. The PDG mass-fraction rules reduce to thickness-weighted harmonic means in cm.
    assert v["x0_cm"] == pytest.approx(3.0 / (2.0 / pb.radiation_length_cm + 1.0 / ps.radiation_length_cm), rel=1e-9)
    assert v["moliere_radius_cm"] == pytest.approx(3.0 / (2.0 / pb.moliere_radius_cm + 1.0 / ps.moliere_radius_cm), rel=1e-9)
    assert v["density_g_cm3"] == pytest.approx((2 * 11.35 + 1.06) / 3)
    # MIP sampling fraction of the scintillator: 2.052 / (2.052 + 2 x 12.74) = 0.0745.
    assert v["sampling_fraction"] == pytest.approx(0.0745, abs=2e-4)


def test_generation_is_reproducible_and_records_its_provenance(small_set: ShowerDataset) -> None:
    again = generate_shower_dataset("A", n_conditions=12, showers_per_condition=40, grid=GRID, seed=5)
    other = generate_shower_dataset("A", n_conditions=12, showers_per_condition=40, grid=GRID, seed=6)
    np.testing.assert_array_equal(again.maps, small_set.maps)
    np.testing.assert_array_equal(again.conditions, small_set.conditions)
    assert not np.array_equal(other.conditions, small_set.conditions)
    assert small_set.maps.dtype == np.float32 and small_set.maps.shape == (480, 12, 8)
    meta = small_set.metadata
    assert meta["seed"] == 5 and meta["simulator"] == "fastsim" and meta["geometry"]["name"] == "A"
    assert meta["grid"]["n_depth"] == 12 and len(meta["conditions"]) == 12
    assert len({c["seed"] for c in meta["conditions"]}) == 12
    # Conditions lie in the geometry's ranges, in units of each material's X0 and Moliere radius.
    depth_x0 = small_set.column("depth_cm") / small_set.column("x0_cm")
    r_rm = small_set.column("r_max_cm") / small_set.column("moliere_radius_cm")
    assert depth_x0.min() >= 15.0 and depth_x0.max() <= 30.0 and r_rm.min() >= 1.5 and r_rm.max() <= 4.0
    e = small_set.column("energy_gev")
    assert e.min() >= 1.0 and e.max() <= 100.0


def test_maps_keep_the_absolute_energy_scale(small_set: ShowerDataset) -> None:
    ratio = small_set.maps.sum(axis=(1, 2)) / small_set.column("energy_gev")
    # Homogeneous blocks of >= 15 X0 and >= 1.5 R_M: most of the energy, never more than the beam.
    assert ratio.max() <= 1.0 + 1e-5
    assert 0.8 < np.median(ratio) < 1.0


def test_deep_wide_block_contains_the_shower() -> None:
    pbwo4 = get_material("PbWO4")
    cond = ShowerCondition("e-", 50.0, "PbWO4", 30 * pbwo4.radiation_length_cm, 4 * pbwo4.moliere_radius_cm)
    maps = simulate_condition(GEOMETRY_A, cond, 300, GRID, seed=1)
    assert maps.sum(axis=(1, 2)).mean() / 50.0 > 0.95


def test_geometry_b_maps_hold_the_active_layer_deposits_only() -> None:
    cond = ShowerCondition("e-", 20.0, "Pb", 18.0, 4.0)
    maps = simulate_condition(GEOMETRY_B, cond, 200, GRID, seed=3)
    det = GEOMETRY_B.detector("Pb", 18.0, 4.0, n_cells=GRID.n_depth)
    batch = FastShowerSimulator(voxels=GEOMETRY_B.simulation_grid(GRID)).simulate(det, 200, ["e-"], (20.0, 20.0), 3)
    # Each depth slice of the map is one cell's scintillator: the same energy as the active layers.
    np.testing.assert_allclose(maps.sum(axis=2), batch.active_deposits, rtol=1e-4, atol=1e-6)
    f_samp = dict(zip(SHOWER_CONDITIONS, condition_vector(GEOMETRY_B, cond)))["sampling_fraction"]
    visible = maps.sum(axis=(1, 2)).mean() / 20.0
    assert 0.6 * f_samp < visible < 1.1 * f_samp


def test_parquet_round_trip_is_exact(small_set: ShowerDataset, tmp_path) -> None:
    path = small_set.to_parquet(tmp_path / "a.parquet")
    back = ShowerDataset.from_parquet(path)
    np.testing.assert_array_equal(back.maps, small_set.maps)
    np.testing.assert_array_equal(back.conditions, small_set.conditions)
    assert back.condition_names == SHOWER_CONDITIONS
    assert back.metadata["seed"] == 5 and back.metadata["conditions"] == small_set.metadata["conditions"]
    np.testing.assert_allclose(back.radial_edges_cm(), small_set.radial_edges_cm())
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_parquet_files_are_clear_data_errors(small_set: ShowerDataset, tmp_path) -> None:
    import json

    import pyarrow.parquet as pq

    with pytest.raises(DataError, match="no such file"):
        ShowerDataset.from_parquet(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        ShowerDataset.from_parquet(tmp_path / "junk.parquet")
    table = pq.read_table(small_set.select(np.arange(10)).to_parquet(tmp_path / "s.parquet"))
    pq.write_table(table.drop(["x0_cm"]), tmp_path / "nocol.parquet")
    with pytest.raises(DataError, match="missing columns.*x0_cm"):
        ShowerDataset.from_parquet(tmp_path / "nocol.parquet")
    meta = json.loads(table.schema.metadata[b"detopt_shower"])
    meta["map_shape"] = [12, 9]
    pq.write_table(table.replace_schema_metadata({b"detopt_shower": json.dumps(meta).encode()}), tmp_path / "shape.parquet")
    with pytest.raises(DataError, match="n_depth x n_radial"):
        ShowerDataset.from_parquet(tmp_path / "shape.parquet")
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "foreign.parquet")
    with pytest.raises(DataError, match="not a detopt shower data set"):
        ShowerDataset.from_parquet(tmp_path / "foreign.parquet")


def test_edges_follow_each_showers_depth_and_radius(small_set: ShowerDataset) -> None:
    d, r = small_set.depth_edges_cm(), small_set.radial_edges_cm()
    assert d.shape == (480, 13) and r.shape == (480, 9)
    np.testing.assert_allclose(d[:, -1], small_set.column("depth_cm"))
    np.testing.assert_allclose(r[:, -1], small_set.column("r_max_cm"))
    np.testing.assert_allclose(r[:, 4] / r[:, -1], 0.5**2)  # radial power 2
    np.testing.assert_allclose(np.diff(d, axis=1), np.broadcast_to(d[:, -1:] / 12, (480, 12)))


def test_split_holds_out_whole_conditions(small_set: ShowerDataset) -> None:
    train, test = small_set.split_by_condition(0.25, seed=1)
    assert len(train) + len(test) == len(small_set)
    train_rows = {tuple(r) for r in train.conditions}
    test_rows = {tuple(r) for r in test.conditions}
    assert not train_rows & test_rows and len(test_rows) == 3 and len(train_rows) == 9
    # Hold out one material by its physical properties (a new point in the condition space).
    x0 = SHOWER_CONDITIONS.index("x0_cm")
    tr, te = small_set.split_by_condition(held_out=lambda rows: rows[:, x0] == rows[0, x0])
    assert set(te.column("x0_cm")) == {small_set.condition_ids()[0][0, x0]}
    assert small_set.condition_ids()[0][0, x0] not in set(tr.column("x0_cm"))


def test_subsample_keeps_every_condition(small_set: ShowerDataset) -> None:
    sub = small_set.subsample(0.05, seed=2)
    assert len(sub) == 12 * 2  # round(0.05 x 40) per condition
    assert len(sub.condition_ids()[0]) == 12
    assert np.isin(sub.maps.sum(axis=(1, 2)), small_set.maps.sum(axis=(1, 2))).all()  # showers of the set
    both = ShowerDataset.concatenate([sub, sub])
    assert len(both) == 48 and len(both.metadata["conditions"]) == 24


def test_subsample_by_conditions_keeps_a_few_conditions_whole(small_set: ShowerDataset) -> None:
    """A new geometry simulated at a few points: a quarter of the 12 conditions, every one of their 40 showers."""
    sub = small_set.subsample(0.25, seed=2, by="conditions")
    assert len(sub.condition_ids()[0]) == 3 and len(sub) == 3 * 40
    kept = {tuple(r) for r in sub.condition_ids()[0]}
    assert kept <= {tuple(r) for r in small_set.condition_ids()[0]}
    assert kept != {tuple(r) for r in small_set.subsample(0.25, seed=3, by="conditions").condition_ids()[0]}
    with pytest.raises(ConfigError, match="showers or conditions"):
        small_set.subsample(0.25, by="events")


def test_grid_of_conditions_covers_every_combination() -> None:
    conds = grid_shower_conditions(GEOMETRY_A, [10.0, 50.0], particles="gamma,e-", size_points=2)
    assert len(conds) == len(GEOMETRY_A.materials) * 2 * 2 * 2 * 2
    ds = generate_shower_dataset(GEOMETRY_B, energies_gev=[10.0], particles=["e-"], showers_per_condition=5, grid=GRID)
    assert len(ds) == 5 and ds.column("sampling_fraction")[0] < 0.1
    rng = np.random.default_rng(0)
    drawn = draw_shower_conditions(GEOMETRY_A, 200, rng, energy_range=(1.0, 100.0))
    # log-uniform in energy: about half of the draws below 10 GeV
    assert 0.4 < np.mean([c.energy_gev < 10.0 for c in drawn]) < 0.6


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ConfigError, match="geometry"):
        get_geometry("C")
    with pytest.raises(ConfigError, match="geometry.depth_x0_range"):
        ShowerGeometry.from_dict({"name": "x", "materials": ["Pb"], "depth_x0_range": [5, 1]})
    with pytest.raises(ConfigError, match="material"):
        ShowerGeometry.from_dict({"name": "x", "materials": ["unobtainium"]})
    with pytest.raises(ConfigError, match="simulator.voxels"):
        generate_shower_dataset("A", n_conditions=1, grid=GRID, simulator=FastShowerSimulator(voxels=VoxelGrid()))
    with pytest.raises(ConfigError, match="n_conditions"):
        generate_shower_dataset("A", grid=GRID)
    with pytest.raises(ConfigError, match="energy_range"):
        generate_shower_dataset("A", n_conditions=2, energy_range=(10.0, 1.0), grid=GRID)
    with pytest.raises(ConfigError, match="material"):
        GEOMETRY_A.detector("polystyrene", 10.0, 2.0)
    with pytest.raises(DataError, match="conditions"):
        ShowerDataset(np.zeros((3, 2, 2), np.float32), np.zeros((2, len(SHOWER_CONDITIONS))))


@pytest.mark.slow
def test_fifty_thousand_showers_of_geometry_a_take_well_under_a_minute() -> None:
    start = time.perf_counter()
    ds = generate_shower_dataset("A", n_conditions=100, showers_per_condition=500, grid=VoxelGrid(n_depth=24, n_radial=16), seed=0)
    elapsed = time.perf_counter() - start
    assert len(ds) == 50_000
    assert elapsed < 30.0, f"{elapsed:.1f} s"


class CountingSimulator:
    """Any object with the `Simulator` protocol's ``simulate`` (here the built-in one, renamed)."""

    name = "counting"

    def __init__(self, voxels: VoxelGrid) -> None:
        self.voxels = voxels
        self.calls = 0

    def simulate(self, detector, n_events, particles, energy_range, seed):
        self.calls += 1
        return FastShowerSimulator(voxels=self.voxels).simulate(detector, n_events, particles, energy_range, seed)


def test_any_simulator_of_the_protocol_makes_the_data_set() -> None:
    sim = CountingSimulator(GEOMETRY_B.simulation_grid(GRID))
    ds = generate_shower_dataset(GEOMETRY_B, n_conditions=3, showers_per_condition=4, grid=GRID, seed=2, simulator=sim)
    ref = generate_shower_dataset(GEOMETRY_B, n_conditions=3, showers_per_condition=4, grid=GRID, seed=2)
    assert sim.calls == 3 and ds.metadata["simulator"] == "counting"
    np.testing.assert_array_equal(ds.maps, ref.maps)


@pytest.mark.slow
def test_geant4_simulator_makes_sampling_maps(tmp_path) -> None:
    import importlib.util
    import warnings

    if importlib.util.find_spec("geant4_pybind") is None:
        pytest.skip("geant4_pybind is not installed")
    from detopt.simulation.geant4 import Geant4Simulator
    from detopt.simulation.geant4.offline_data import generate

    grid = VoxelGrid(n_depth=6, n_radial=4)
    sim = Geant4Simulator(voxels=GEOMETRY_B.simulation_grid(grid), data_dir=generate(tmp_path / "g4"))
    cond = ShowerCondition("e-", 2.0, "Pb", 10.0, 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # substitute data warns on every run
        ds = generate_shower_dataset(GEOMETRY_B, conditions=[cond], showers_per_condition=5, grid=grid, seed=1,
                                     simulator=sim)
    assert ds.maps.shape == (5, 6, 4) and ds.metadata["simulator"] == "geant4"
    visible = ds.maps.sum(axis=(1, 2)).mean() / 2.0
    f_samp = ds.column("sampling_fraction")[0]
    assert 0.3 * f_samp < visible < 2.0 * f_samp


def test_a_data_set_whose_metadata_is_not_json_is_a_data_error(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "broken.parquet"
    pq.write_table(pa.table({"energy_gev": [1.0]}).replace_schema_metadata({b"detopt_shower": b"{not json"}), path)
    with pytest.raises(DataError, match="broken.parquet: the 'detopt_shower' metadata is not valid JSON"):
        ShowerDataset.from_parquet(path)
