"""Geant4 data handling and the formulas of the substitute data (no Geant4 needed).

References: PDG "Atomic and nuclear properties of materials" (X0, nuclear interaction lengths),
the free-atom n-p cross section at thermal energies (20.4 b).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from detopt.detector import get_material
from detopt.errors import ConfigError
from detopt.simulation.geant4 import locate_data
from detopt.simulation.geant4 import substitute_physics as phys
from detopt.simulation.geant4.data import DATASET_VERSIONS, DATASETS, SUBSTITUTE_MARKER
from detopt.simulation.geant4.materials import geant4_material_spec, supported_materials

AVOGADRO = 6.02214076e23
MB_TO_CM2 = 1e-27


def _radiation_length_cm(z: int, a: float, density: float) -> float:
    """X0 from the substitute bremsstrahlung tables at 10 GeV: 1/X0 = n Z^2 / beta^2 * integral chi dkappa."""
    kappa = np.linspace(0.0, 1.0, 4001)
    chi = phys.bremsstrahlung_scaled_dcs(z, np.full_like(kappa, 1e4), kappa)
    integral = float(np.sum(0.5 * (chi[1:] + chi[:-1]) * np.diff(kappa))) * MB_TO_CM2
    n = density * AVOGADRO / a
    return 1.0 / (n * z * z * integral)


@pytest.mark.parametrize(
    ("name", "z", "a"), [("Pb", 82, 207.2), ("W", 74, 183.84), ("Cu", 29, 63.546), ("Fe", 26, 55.845)]
)
def test_substitute_bremsstrahlung_reproduces_pdg_radiation_length(name: str, z: int, a: float) -> None:
    # Tsai's complete-screening cross section defines X0 (PDG eq. 34.26): within 3% of the PDG table.
    mat = get_material(name)
    x0 = _radiation_length_cm(z, a, mat.density_g_cm3)
    assert x0 == pytest.approx(mat.radiation_length_cm, rel=0.03)


def test_substitute_bremsstrahlung_is_positive_and_screened() -> None:
    t = np.geomspace(1e-3, 1e4, 57)[:, None]
    kappa = np.linspace(0.0, 1.0, 21)[None, :]
    chi = phys.bremsstrahlung_scaled_dcs(82, t, kappa)
    assert np.all(np.isfinite(chi)) and np.all(chi >= 0.0)
    # Soft-photon end rises with energy (less screening -> more) and saturates (complete screening).
    assert chi[-1, 0] == pytest.approx(chi[-5, 0], rel=1e-3)
    assert chi[20, 0] < chi[-1, 0]


def test_neutron_proton_cross_section_at_thermal_energy() -> None:
    xs = phys.neutron_cross_sections_barn(1, 1.008, np.array([2.53e-8]))
    assert xs["el"][0] == pytest.approx(20.4, rel=0.01)
    assert xs["cap"][0] == pytest.approx(0.3326, rel=1e-6)
    assert xs["inel"][0] == 0.0


@pytest.mark.parametrize(("name", "a"), [("Pb", 207.2), ("Fe", 55.845), ("Cu", 63.546), ("W", 183.84)])
def test_neutron_inelastic_matches_pdg_interaction_length(name: str, a: float) -> None:
    # Above a few GeV the inelastic cross section gives the nuclear interaction length: within 10% of PDG.
    mat = get_material(name)
    z = {"Pb": 82, "Fe": 26, "Cu": 29, "W": 74}[name]
    sigma_b = phys.neutron_cross_sections_barn(z, a, np.array([1e4]))["inel"][0]
    lam = a / (AVOGADRO * sigma_b * 1e-24 * mat.density_g_cm3)
    assert lam == pytest.approx(mat.nuclear_interaction_length_cm, rel=0.10)


def test_neutron_cross_sections_are_continuous_and_positive() -> None:
    e = np.geomspace(1e-11, 1e8, 191)
    for z, a in [(1, 1.008), (6, 12.011), (26, 55.845), (82, 207.2)]:
        xs = phys.neutron_cross_sections_barn(z, a, e)
        for name, v in xs.items():
            assert np.all(np.isfinite(v)) and np.all(v >= 0.0), (z, name)
        # the low-energy shapes join the high-energy formulas at 20 MeV without a kink: the slope of
        # log(sigma) per node changes by less than 0.1 (10%) around the join
        near = (e > 10.0) & (e < 40.0)
        for name in ("inel", "el") if z > 1 else ("el",):  # n-p inelastic is 0 below the pion threshold
            v = xs[name][near]
            assert np.max(np.abs(np.diff(np.log(v), n=2))) < 0.1, (z, name)


def _fake_tree(root, marker: bool) -> None:
    for name in DATASET_VERSIONS.values():
        (root / name).mkdir(parents=True)
    if marker:
        (root / DATASET_VERSIONS["G4LEDATA"] / SUBSTITUTE_MARKER).write_text(json.dumps({"version": "1"}))


def test_locate_data_order_and_kind(tmp_path) -> None:
    official, substitute = tmp_path / "official", tmp_path / "substitute"
    _fake_tree(official, marker=False)
    _fake_tree(substitute, marker=True)
    data = locate_data(environ={"GEANT4_DATA_DIR": str(official)})
    assert data.kind == "official"
    assert set(data.env) == set(DATASETS)
    assert data.env["G4LEDATA"].endswith("G4EMLOW8.8")
    data = locate_data(environ={"GEANT4_DATA_DIR": str(substitute)})
    assert data.kind == "substitute" and data.info["version"] == "1"
    # explicit folder wins over the environment; all 12 variables win over GEANT4_DATA_DIR
    assert locate_data(substitute, environ={"GEANT4_DATA_DIR": str(official)}).kind == "substitute"
    env12 = {var: str(official / DATASET_VERSIONS[var]) for var in DATASETS}
    assert locate_data(environ={**env12, "GEANT4_DATA_DIR": str(substitute)}).kind == "official"
    # the worker environment carries all 12 variables and no GEANT4_DATA_DIR
    worker_env = data.environment({"GEANT4_DATA_DIR": "x", "PATH": "/bin"})
    assert "GEANT4_DATA_DIR" not in worker_env and all(var in worker_env for var in DATASETS)


def test_locate_data_explains_what_to_do(tmp_path) -> None:
    with pytest.raises(ConfigError, match="offline-data"):
        locate_data(environ={"HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="G4EMLOW8.8"):
        locate_data(environ={"GEANT4_DATA_DIR": str(tmp_path)})


def test_every_builtin_material_has_a_geant4_definition() -> None:
    from detopt.detector import material_table

    assert set(supported_materials()) == set(material_table())
    assert geant4_material_spec(get_material("PbWO4")) == {"nist": "G4_PbWO4"}
    pbf2 = geant4_material_spec(get_material("PbF2"))
    assert pbf2["elements"] == ["Pb", "F"] and pbf2["atoms"] == [1, 2]
    assert pbf2["density_g_cm3"] == pytest.approx(7.77)


def test_importing_the_backend_does_not_import_geant4() -> None:
    # importing geant4_pybind checks the data sets (and may prompt or download): only workers may do it
    import detopt.simulation.geant4  # noqa: F401
    import detopt.simulation.geant4.compare  # noqa: F401
    import detopt.simulation.geant4.offline_data  # noqa: F401
    import detopt.simulation.geant4.worker  # noqa: F401

    assert "geant4_pybind" not in sys.modules


def test_offline_data_under_a_plain_file_is_a_clear_error(tmp_path) -> None:
    from detopt.simulation.geant4.offline_data import generate

    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    with pytest.raises(ConfigError, match="directory: cannot create the folder .*Not a directory"):
        generate(plain / "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]
