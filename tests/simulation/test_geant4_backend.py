"""Geant4 backend end to end, on substitute data generated into a temporary folder (about 15 s).

Skipped when geant4_pybind is not installed. Not ``pytest.importorskip``: importing geant4_pybind
without its data variables prompts for a download (or, with CI=true, starts one).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("geant4_pybind") is None:
    pytest.skip("geant4_pybind is not installed (pip install 'detopt[geant4]')", allow_module_level=True)

from detopt.detector import SamplingCalorimeter  # noqa: E402
from detopt.errors import ConfigError  # noqa: E402
from detopt.simulation import PARTICLES, Simulator, VoxelGrid  # noqa: E402
from detopt.simulation.geant4 import Geant4Simulator, SubstituteDataWarning  # noqa: E402
from detopt.simulation.geant4.offline_data import generate  # noqa: E402
from detopt.simulation.geant4.simulator import draw_beam  # noqa: E402

BEAM_GEV = 5.0
N_PER_PARTICLE = 20


@pytest.fixture(scope="session")
def substitute_data(tmp_path_factory: pytest.TempPathFactory):
    return generate(tmp_path_factory.mktemp("g4data"))


def small_stack() -> SamplingCalorimeter:
    """3 x (2 cm Pb + 1 cm polystyrene): 10.7 X0, 0.37 lambda_pi (the stack of the issue's timing)."""
    return SamplingCalorimeter.from_layers([("Pb", 2.0, False), ("polystyrene", 1.0, True)] * 3, 30.0)


@pytest.fixture(scope="module")
def mixed_run(substitute_data):
    sim = Geant4Simulator(data_dir=substitute_data)
    with pytest.warns(SubstituteDataWarning, match="substitute"):
        return sim.simulate(small_stack(), 2 * N_PER_PARTICLE, ("gamma", "pi+"), (BEAM_GEV, BEAM_GEV), seed=3)


def test_geant4_simulator_satisfies_the_protocol() -> None:
    assert isinstance(Geant4Simulator(), Simulator)


def test_substitute_data_holds_the_files_geant4_reads(substitute_data) -> None:
    emlow = substitute_data / "G4EMLOW8.8"
    assert (emlow / "brem_SB" / "br82").is_file()
    assert (substitute_data / "G4PARTICLEXS4.2" / "neutron" / "inel82").is_file()
    # photo-effect of Pb at 100 keV from the Sandia table: 1.80 kb (NIST XCOM: 5.23 cm2/g = 1.80 kb), 5%
    rows = np.loadtxt(emlow / "epics2017" / "phot" / "pe-cs-82.dat", skiprows=2)
    sigma = np.interp(0.1, rows[:, 0], rows[:, 1]) / 0.1**3
    assert sigma == pytest.approx(1800.0, rel=0.05)


def test_events_conserve_energy_and_carry_run_metadata(mixed_run) -> None:
    ev = mixed_run
    assert len(ev) == 2 * N_PER_PARTICLE and ev.deposits.shape == (2 * N_PER_PARTICLE, 6)
    assert np.all(ev.deposits >= 0.0)
    assert np.all(ev.total_deposit <= ev.energy * (1 + 1e-9))  # energy conservation
    particle, energy, _ = draw_beam(2 * N_PER_PARTICLE, ("gamma", "pi+"), (BEAM_GEV, BEAM_GEV), 3)
    np.testing.assert_array_equal(ev.particle, particle)
    np.testing.assert_allclose(ev.energy, energy)
    assert ev.metadata["simulator"] == "geant4" and ev.metadata["geant4_data"] == "substitute"
    assert ev.metadata["physics_list"] == "FTFP_BERT_EMV-noEmExtra"
    assert np.all(np.isnan(ev.first_interaction_cm))


def test_photons_deposit_in_lead_and_shower_more_than_pions(mixed_run) -> None:
    ev = mixed_run
    gamma = ev.particle == PARTICLES.index("gamma")
    pion = ev.particle == PARTICLES.index("pi+")
    assert gamma.sum() > 5 and pion.sum() > 5
    lead = ~np.asarray(ev.active)
    photon_dep = ev.deposits[gamma]
    # 10.7 X0 of lead: 60-95% of a 5 GeV photon is absorbed (about 0.75 with 20 events), > 85% of it in lead
    assert 0.6 < photon_dep.sum(axis=1).mean() / BEAM_GEV < 0.95
    assert photon_dep[:, lead].sum() / photon_dep.sum() > 0.85
    # pions: 0.37 interaction lengths, so most pass as MIPs (~ 2 x 12.7 MeV/cm x 6 cm in lead)
    assert np.median(ev.deposits[pion].sum(axis=1)) < 0.3
    assert ev.deposits[pion].sum(axis=1).mean() < 0.5 * photon_dep.sum(axis=1).mean()


def test_fixed_seed_reproduces_events_and_new_seed_changes_them(substitute_data, mixed_run) -> None:
    sim = Geant4Simulator(data_dir=substitute_data)
    with pytest.warns(SubstituteDataWarning):
        again = sim.simulate(small_stack(), 2 * N_PER_PARTICLE, ("gamma", "pi+"), (BEAM_GEV, BEAM_GEV), seed=3)
    np.testing.assert_array_equal(again.deposits, mixed_run.deposits)
    with pytest.warns(SubstituteDataWarning):
        other = sim.simulate(small_stack(), 2 * N_PER_PARTICLE, ("gamma", "pi+"), (BEAM_GEV, BEAM_GEV), seed=4)
    assert not np.allclose(other.deposits, mixed_run.deposits)


def test_voxel_maps_add_up_to_layer_deposits(substitute_data) -> None:
    sim = Geant4Simulator(voxels=VoxelGrid(n_depth=9, n_radial=6), data_dir=substitute_data)
    with pytest.warns(SubstituteDataWarning):
        ev = sim.simulate(small_stack(), 8, ("gamma",), (BEAM_GEV, BEAM_GEV), seed=5)
    assert ev.voxels is not None and ev.voxels.shape == (8, 9, 6)
    np.testing.assert_allclose(ev.voxels.sum(axis=(1, 2)), ev.total_deposit, rtol=1e-5)
    # EM showers are narrow: the two innermost rings (r < 4.7 cm of 16.9 cm) hold most of the energy
    rings = ev.voxels.sum(axis=(0, 1))
    assert rings[:2].sum() / rings.sum() > 0.8


def test_reference_physics_lists_need_official_data(substitute_data) -> None:
    sim = Geant4Simulator(data_dir=substitute_data, physics_list="FTFP_BERT")
    with pytest.raises(ConfigError, match="official"):
        sim.simulate(small_stack(), 1, ("gamma",), (1.0, 1.0), seed=0)


def test_a_design_found_on_the_fast_simulator_is_judged_with_geant4(substitute_data, tmp_path, monkeypatch) -> None:
    """``detopt evaluate RUN --simulator geant4``: the same run, fresh Geant4 events, a separate result file."""
    import json
    import sys
    from pathlib import Path

    import yaml
    from click.testing import CliRunner
    import typer.main

    from detopt.cli.main import app

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
    from malformed import tiny_config

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "run")))
    command = typer.main.get_command(app)
    assert CliRunner().invoke(command, ["optimize", str(path)]).exit_code == 0
    monkeypatch.setenv("GEANT4_DATA_DIR", str(substitute_data))
    with pytest.warns(SubstituteDataWarning):
        result = CliRunner().invoke(command, ["evaluate", str(tmp_path / "run"), "--simulator", "geant4", "-n", "100"])
    assert result.exit_code == 0, (result.output, result.exception)
    numbers = json.loads((tmp_path / "run" / "evaluation_geant4.json").read_text())
    assert numbers["simulator"] == "geant4" and numbers["final"]["loss"] > 0
    assert not (tmp_path / "run" / "evaluation.json").exists()
