"""Where the Geant4 data sets are: official ones on a user's machine, or detopt's substitute files.

Geant4 reads its data (cross-section tables, level schemes) from 12 folders named by the
``G4*DATA`` environment variables. ``geant4_pybind`` checks them when it is imported and, if
any is missing and ``GEANT4_DATA_DIR`` is not set, asks on the terminal whether to download
them (an ``EOFError`` without a terminal; a download attempt with ``CI=true``). detopt therefore
resolves the folders itself, in the parent process, and starts every Geant4 worker with all 12
variables set, so that the import never prompts.

Search order (:func:`locate_data`):

1. an explicit folder (``Geant4Simulator(data_dir=...)``), laid out like ``GEANT4_DATA_DIR``;
2. all 12 ``G4*DATA`` variables, when every one of them is set;
3. ``GEANT4_DATA_DIR``: one sub-folder per data set, e.g. ``G4EMLOW8.8``;
4. ``~/.geant4_pybind``, where ``geant4_pybind`` itself downloads the data sets.

A folder written by :func:`detopt.simulation.geant4.offline_data.generate` has the same layout
and carries a marker file; runs on it are flagged as ``"substitute"``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from detopt.errors import ConfigError

#: Environment variable -> folder name prefix of the data set, as listed by geant4_pybind 0.1.3
#: (Geant4 11.4.p01: G4NDL4.7.1, G4EMLOW8.8, PhotonEvaporation6.1.2, RadioactiveDecay6.1.2,
#: G4PARTICLEXS4.2, G4PII1.3, RealSurface2.2, G4SAIDDATA2.0, G4ABLA3.3, G4INCL1.3,
#: G4ENSDFSTATE3.0, G4CHANNELING2.0).
DATASETS: Mapping[str, str] = {
    "G4NEUTRONHPDATA": "G4NDL",
    "G4LEDATA": "G4EMLOW",
    "G4LEVELGAMMADATA": "PhotonEvaporation",
    "G4RADIOACTIVEDATA": "RadioactiveDecay",
    "G4PARTICLEXSDATA": "G4PARTICLEXS",
    "G4PIIDATA": "G4PII",
    "G4REALSURFACEDATA": "RealSurface",
    "G4SAIDXSDATA": "G4SAIDDATA",
    "G4ABLADATA": "G4ABLA",
    "G4INCLDATA": "G4INCL",
    "G4ENSDFSTATEDATA": "G4ENSDFSTATE",
    "G4CHANNELINGDATA": "G4CHANNELING",
}

#: Folder names (with versions) that geant4_pybind 0.1.3 expects; the substitute generator uses them too.
DATASET_VERSIONS: Mapping[str, str] = {
    "G4NEUTRONHPDATA": "G4NDL4.7.1",
    "G4LEDATA": "G4EMLOW8.8",
    "G4LEVELGAMMADATA": "PhotonEvaporation6.1.2",
    "G4RADIOACTIVEDATA": "RadioactiveDecay6.1.2",
    "G4PARTICLEXSDATA": "G4PARTICLEXS4.2",
    "G4PIIDATA": "G4PII1.3",
    "G4REALSURFACEDATA": "RealSurface2.2",
    "G4SAIDXSDATA": "G4SAIDDATA2.0",
    "G4ABLADATA": "G4ABLA3.3",
    "G4INCLDATA": "G4INCL1.3",
    "G4ENSDFSTATEDATA": "G4ENSDFSTATE3.0",
    "G4CHANNELINGDATA": "G4CHANNELING2.0",
}

#: Name of the marker file that :mod:`offline_data` writes into every folder it generates.
SUBSTITUTE_MARKER = "DETOPT_SUBSTITUTE.json"

DataKind = Literal["official", "substitute"]


class SubstituteDataWarning(UserWarning):
    """Geant4 ran on detopt's generated substitute data: its results are approximate (see docs/geant4.md)."""


@dataclass(frozen=True)
class Geant4Data:
    """The 12 data folders of one Geant4 run, and whether they are official or detopt's substitute."""

    kind: DataKind
    env: Mapping[str, str]
    source: str
    info: Mapping[str, object] = field(default_factory=dict)

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A process environment with all ``G4*DATA`` variables set (and never ``CI=true`` downloads)."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        env.pop("GEANT4_DATA_DIR", None)
        # geant4_pybind downloads data sets when CI=true, and then fails without ~/.geant4_pybind.
        env.pop("CI", None)
        return env


def _version_key(name: str, prefix: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", name[len(prefix):]))


def _from_folder(root: Path) -> dict[str, str] | None:
    """The 12 data folders inside ``root`` (highest version of each prefix), or None if one is missing."""
    if not root.is_dir():
        return None
    entries = [p for p in root.iterdir() if p.is_dir()]
    env: dict[str, str] = {}
    for var, prefix in DATASETS.items():
        # a prefix followed by a version only ("G4PII1.3"), so that "G4NDL" never matches "G4NDL_extra"
        matches = [p for p in entries if re.fullmatch(re.escape(prefix) + r"[\d.]+", p.name)]
        if not matches:
            return None
        env[var] = str(max(matches, key=lambda p: _version_key(p.name, prefix)))
    return env


def _kind_of(env: Mapping[str, str]) -> tuple[DataKind, dict[str, object]]:
    for var in ("G4LEDATA", "G4PARTICLEXSDATA", "G4ENSDFSTATEDATA"):
        marker = Path(env[var]) / SUBSTITUTE_MARKER
        if marker.is_file():
            try:
                info = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = {}
            return "substitute", dict(info)
    return "official", {}


def missing_data_message() -> str:
    return (
        "no Geant4 data sets found. Either install the official ones and set GEANT4_DATA_DIR (a folder "
        "holding G4EMLOW8.8, G4PARTICLEXS4.2, ... as geant4_pybind downloads them to ~/.geant4_pybind) or all "
        "12 G4*DATA variables; or, on a machine without internet access, generate approximate substitute "
        "files with `detopt geant4 offline-data DIR` and set GEANT4_DATA_DIR=DIR (results are then approximate, "
        "see docs/geant4.md)"
    )


def locate_data(data_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Geant4Data:
    """Find the Geant4 data sets (see the module docstring for the order); raise `ConfigError` if none."""
    environ = os.environ if environ is None else environ
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        env = _from_folder(root)
        if env is None:
            raise ConfigError(
                "geant4.data_dir",
                f"{root} does not hold the 12 Geant4 data set folders ({', '.join(DATASET_VERSIONS.values())}); "
                "generate substitute ones with `detopt geant4 offline-data DIR`",
            )
        kind, info = _kind_of(env)
        return Geant4Data(kind, env, str(root), info)
    if all(environ.get(var) for var in DATASETS):
        env = {var: environ[var] for var in DATASETS}
        kind, info = _kind_of(env)
        return Geant4Data(kind, env, "G4*DATA environment variables", info)
    if environ.get("GEANT4_DATA_DIR"):
        root = Path(environ["GEANT4_DATA_DIR"]).expanduser()
        env = _from_folder(root)
        if env is None:
            raise ConfigError(
                "GEANT4_DATA_DIR",
                f"{root} does not hold the 12 Geant4 data set folders ({', '.join(DATASET_VERSIONS.values())})",
            )
        kind, info = _kind_of(env)
        return Geant4Data(kind, env, f"GEANT4_DATA_DIR={root}", info)
    home = environ.get("HOME")
    if home:
        env = _from_folder(Path(home) / ".geant4_pybind")
        if env is not None:
            kind, info = _kind_of(env)
            return Geant4Data(kind, env, str(Path(home) / ".geant4_pybind"), info)
    raise ConfigError("geant4.data_dir", missing_data_message())
