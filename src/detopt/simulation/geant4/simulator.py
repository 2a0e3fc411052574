"""`Geant4Simulator`: the `Simulator` protocol backed by Geant4 (geant4_pybind), one worker process per call."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from detopt.detector.calorimeter import SamplingCalorimeter
from detopt.errors import ConfigError, DetoptError
from detopt.simulation.events import EventBatch
from detopt.simulation.fastsim import _validate
from detopt.simulation.geant4.data import Geant4Data, SubstituteDataWarning, locate_data
from detopt.simulation.geant4.materials import geant4_material_spec
from detopt.simulation.geant4 import worker
from detopt.simulation.geant4.worker import DETOPT_PHYSICS_LIST
from detopt.simulation.particles import PARTICLES
from detopt.simulation.voxels import VoxelGrid

#: Geant4's default production cut (mm), kept unless the user asks otherwise.
DEFAULT_PRODUCTION_CUT_MM = 0.7
#: Worker time limit when none is given: start-up allowance plus a generous per-event allowance (s).
TIMEOUT_BASE_S, TIMEOUT_PER_EVENT_S = 120.0, 2.0
#: Characters of the worker's output quoted when it fails.
ERROR_TAIL_CHARS = 3000


class Geant4Error(DetoptError, RuntimeError):
    """The Geant4 worker failed (Geant4 exception, crash, time limit); the message quotes its output."""


def geant4_available() -> bool:
    """True if geant4_pybind is installed (without importing it: its import checks the data sets)."""
    import importlib.util

    return importlib.util.find_spec("geant4_pybind") is not None


def draw_beam(
    n_events: int, species: Sequence[str], energy_range: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Particle codes, energies (GeV, uniform) and a Geant4 engine seed, all derived from ``seed``."""
    beam_seq, g4_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(beam_seq)
    codes = np.array([PARTICLES.index(p) for p in species], dtype=np.int8)
    particle = codes[rng.integers(0, len(codes), size=n_events)]
    energy = rng.uniform(energy_range[0], energy_range[1], size=n_events)
    g4_seed = int(g4_seq.generate_state(1, dtype=np.uint32)[0] % (2**31 - 1)) + 1
    return particle, energy, g4_seed


class Geant4Simulator:
    """Full Geant4 simulation of a `SamplingCalorimeter` (the `Simulator` protocol).

    Each :meth:`simulate` call runs one worker process (the script `detopt.simulation.geant4.worker`)
    with a serial run manager: NIST materials, a particle gun on the axis at normal incidence,
    energy deposits per layer (and per voxel if ``voxels`` is given) from Geant4's own scorers.

    ``data_dir``: folder of the Geant4 data sets (default: found from the environment, see
    `detopt.simulation.geant4.data`). On detopt's substitute data every run warns
    (`SubstituteDataWarning`) and records ``"geant4_data": "substitute"`` in the metadata.
    ``physics_list``: ``"FTFP_BERT_EMV-noEmExtra"`` (default; runs on substitute data) or any
    Geant4 reference list such as ``"FTFP_BERT"`` (needs the official data sets).
    ``first_interaction_cm`` is NaN: finding it would need Python code per track.
    """

    name = "geant4"

    def __init__(
        self,
        voxels: VoxelGrid | None = None,
        data_dir: str | Path | None = None,
        physics_list: str = DETOPT_PHYSICS_LIST,
        production_cut_mm: float = DEFAULT_PRODUCTION_CUT_MM,
        timeout_s: float | None = None,
    ) -> None:
        if not (isinstance(production_cut_mm, (int, float)) and math.isfinite(production_cut_mm)
                and production_cut_mm > 0):
            raise ConfigError("geant4.production_cut_mm", f"must be a finite number > 0 mm, got {production_cut_mm!r}")
        if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ConfigError("geant4.timeout_s", f"must be a number of seconds > 0, got {timeout_s!r}")
        if not isinstance(physics_list, str) or not physics_list.strip():
            raise ConfigError("geant4.physics_list", f"must be a physics list name, got {physics_list!r}")
        self.voxels = voxels
        self.data_dir = None if data_dir is None else str(data_dir)
        self.physics_list = physics_list
        self.production_cut_mm = float(production_cut_mm)
        self.timeout_s = timeout_s

    def data(self) -> Geant4Data:
        """The data sets this simulator will use (raises `ConfigError` if there are none)."""
        return locate_data(self.data_dir)

    def simulate(
        self,
        detector: SamplingCalorimeter,
        n_events: int,
        particles: Sequence[str] | str = ("gamma", "pi+"),
        energy_range: tuple[float, float] = (1.0, 20.0),
        seed: int = 0,
    ) -> EventBatch:
        n_events, species, (e_lo, e_hi), seed = _validate(n_events, particles, energy_range, seed)
        if not geant4_available():
            raise ConfigError("simulator", "the Geant4 backend needs geant4_pybind: pip install 'detopt[geant4]'")
        data = self.data()
        if data.kind == "substitute" and self.physics_list != DETOPT_PHYSICS_LIST:
            raise ConfigError(
                "geant4.physics_list",
                f"{self.physics_list!r} needs the official Geant4 data sets; on detopt's substitute data only "
                f"{DETOPT_PHYSICS_LIST!r} runs",
            )
        particle, energy, g4_seed = draw_beam(n_events, species, (e_lo, e_hi), seed)
        spec = {
            "layers": [
                {"name": layer.name, "thickness_cm": layer.thickness_cm, "active": layer.active,
                 "material": geant4_material_spec(layer.material)}
                for layer in detector.layers
            ],
            "transverse_size_cm": detector.transverse_size_cm,
            "particle_names": list(PARTICLES),
            "particle": particle.tolist(),
            "energy_gev": energy.tolist(),
            "g4_seed": g4_seed,
            "physics_list": self.physics_list,
            "production_cut_mm": self.production_cut_mm,
            "voxels": None if self.voxels is None else {
                "depth_edges_cm": self.voxels.depth_edges_cm(detector.depth_cm).tolist(),
                "radial_edges_cm": self.voxels.radial_edges_cm(detector.transverse_size_cm).tolist(),
            },
        }
        if data.kind == "substitute":
            warnings.warn(
                f"Geant4 runs on detopt's generated substitute data ({data.source}), not on the official data "
                "sets: bremsstrahlung, photo-effect and neutron cross sections are approximations (docs/geant4.md)",
                SubstituteDataWarning, stacklevel=2,
            )
        deposits, voxels, info = self._run_worker(spec, data, n_events)
        meta = {
            "simulator": self.name, "seed": seed, "particles": list(species), "energy_range_gev": [e_lo, e_hi],
            "detector": detector.describe(),
            "voxel_grid": None if self.voxels is None else self.voxels.model_dump(),
            "geant4_data": data.kind, "geant4_data_source": data.source,
            "geant4_substitute_version": data.info.get("version") if data.kind == "substitute" else None,
            "physics_list": self.physics_list, "production_cut_mm": self.production_cut_mm,
            "geant4_seed": g4_seed, "geant4_pybind": _pybind_version(),
            **info,
        }
        return EventBatch(
            particle=particle, energy=energy, deposits=deposits, first_interaction_cm=np.full(n_events, np.nan),
            layer_names=detector.layer_names, active=tuple(bool(a) for a in detector.active_mask),
            voxels=voxels, metadata=meta,
        )

    def _run_worker(
        self, spec: dict[str, object], data: Geant4Data, n_events: int
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, object]]:
        timeout = self.timeout_s if self.timeout_s is not None else TIMEOUT_BASE_S + TIMEOUT_PER_EVENT_S * n_events
        with tempfile.TemporaryDirectory(prefix="detopt-geant4-") as tmp:
            spec_path, out_path, log_path = Path(tmp) / "spec.json", Path(tmp) / "events.parquet", Path(tmp) / "g4.log"
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            cmd = [sys.executable, str(Path(worker.__file__)), str(spec_path), str(out_path)]
            with open(log_path, "w", encoding="utf-8", errors="replace") as log:
                try:
                    proc = subprocess.run(cmd, env=data.environment(), cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, timeout=timeout, check=False)
                except subprocess.TimeoutExpired:
                    raise Geant4Error(
                        f"Geant4 worker exceeded {timeout:.0f} s for {n_events} events; raise timeout_s. Output:\n"
                        + _tail(log_path)
                    ) from None
            if proc.returncode != 0 or not out_path.is_file():
                raise Geant4Error(f"Geant4 worker failed (exit status {proc.returncode}). Output:\n" + _tail(log_path))
            return worker.read_result(out_path)


def _tail(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[-ERROR_TAIL_CHARS:]


def _pybind_version() -> str | None:
    try:
        return metadata.version("geant4_pybind")
    except metadata.PackageNotFoundError:
        return None
