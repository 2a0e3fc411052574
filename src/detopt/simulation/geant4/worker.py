"""The Geant4 worker process: one simulation, from a JSON spec to a Parquet file of deposits.

    python path/to/detopt/simulation/geant4/worker.py SPEC.json OUT.parquet

Run as a script (not ``-m``) so that the process imports only numpy, pyarrow and geant4_pybind,
not the rest of detopt (scipy and friends add more than a second per simulation).

Started by `Geant4Simulator` with all ``G4*DATA`` variables set (importing geant4_pybind checks
them). One process per simulation because a Geant4 run manager cannot be created twice in one
process, and serial because multi-threaded run managers with Python user classes deadlock in
``Initialize()``.

Geometry: the layers are boxes of the calorimeter's square face placed one after the other along
+z in a vacuum world; the beam starts on the axis 5 mm in front of the first layer. With a voxel
grid each layer is cut at the depth-slice edges into segments, and each segment holds one
cylindrical ring (G4Tubs) per radial bin but the last; the last bin is the rest of the segment
(everything beyond the last inner ring edge, corners of the square included). Ring edges beyond
the radius of the face's inscribed circle are dropped (their energy goes to the last bin).

Scoring: one G4MultiFunctionalDetector with a G4PSEnergyDeposit on every volume, keyed by copy
number; the Python event action only reads that map once per event (no per-step Python).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]  # run as a script: keep this folder's modules (data.py, ...) from shadowing others

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

#: Gap between the beam's start and the first layer (cm).
GUN_OFFSET_CM = 0.5
#: Margin of the vacuum world around the calorimeter (cm).
WORLD_MARGIN_CM = 2.0
#: Shrink factor keeping ring cylinders strictly inside their segment box (avoids coincident surfaces).
INSIDE = 1.0 - 1e-9
#: Name of the default physics list: FTFP_BERT's hadronics with EM option 1 and without G4EmExtraPhysics.
DETOPT_PHYSICS_LIST = "FTFP_BERT_EMV-noEmExtra"


def _segments(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Segment edges (cm), the layer of each segment, and its depth slice (None without voxels)."""
    thick = np.array([layer["thickness_cm"] for layer in spec["layers"]], dtype=float)
    layer_edges = np.concatenate([[0.0], np.cumsum(thick)])
    vox = spec.get("voxels")
    if vox is None:
        return layer_edges, np.arange(thick.size), None
    slice_edges = np.asarray(vox["depth_edges_cm"], dtype=float)
    edges = np.unique(np.concatenate([layer_edges, slice_edges]))
    keep = np.concatenate([[True], np.diff(edges) > 1e-9 * max(layer_edges[-1], 1.0)])
    edges = edges[keep]
    edges[-1] = layer_edges[-1]
    mids = 0.5 * (edges[:-1] + edges[1:])
    seg_layer = np.clip(np.searchsorted(layer_edges, mids) - 1, 0, thick.size - 1)
    seg_slice = np.clip(np.searchsorted(slice_edges, mids) - 1, 0, slice_edges.size - 2)
    return edges, seg_layer, seg_slice


def _physics_list(g4: Any, name: str) -> Any:
    if name != DETOPT_PHYSICS_LIST:
        return g4.G4PhysListFactory().GetReferencePhysList(name)

    class DetoptPhysics(g4.G4VModularPhysicsList):
        """FTFP_BERT with EM standard option 1 and no gamma/lepto-nuclear physics (G4EmExtraPhysics):
        the constructors whose data files detopt's substitute data set provides."""

        def __init__(self) -> None:
            super().__init__()
            self.SetVerboseLevel(0)
            self.RegisterPhysics(g4.G4EmStandardPhysics_option1())
            self.RegisterPhysics(g4.G4DecayPhysics())
            self.RegisterPhysics(g4.G4HadronElasticPhysics())
            self.RegisterPhysics(g4.G4HadronPhysicsFTFP_BERT())
            self.RegisterPhysics(g4.G4IonPhysics())
            self.RegisterPhysics(g4.G4StoppingPhysics())

    return DetoptPhysics()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Simulate the events of ``spec``; returns arrays ``deposits (n, L)``, ``voxels (n, D, R)`` or None, and info."""
    t_start = time.perf_counter()
    import geant4_pybind as g4

    cm, mm, GeV = g4.cm, g4.mm, g4.GeV
    layers = spec["layers"]
    n_layers = len(layers)
    half_xy = 0.5 * float(spec["transverse_size_cm"]) * cm
    seg_edges, seg_layer, seg_slice = _segments(spec)
    n_seg = seg_layer.size
    vox = spec.get("voxels")
    ring_edges: list[float] = []
    n_radial = 1
    if vox is not None:
        radial = np.asarray(vox["radial_edges_cm"], dtype=float)
        n_radial = radial.size - 1
        inner = [float(r) for r in radial[1:-1] if 0.0 < r * cm < half_xy * INSIDE]
        ring_edges = [0.0, *inner]
    n_cells = n_seg * n_radial
    depth = float(seg_edges[-1]) * cm
    particle_codes = np.asarray(spec["particle"], dtype=np.int64)
    energies_gev = np.asarray(spec["energy_gev"], dtype=float)
    names = spec["particle_names"]
    n_events = energies_gev.size
    cells = np.zeros((n_events, n_cells))
    keep: list[Any] = []  # Geant4 objects owned by Python must outlive the run

    class Detector(g4.G4VUserDetectorConstruction):
        def Construct(self) -> Any:
            nist = g4.G4NistManager.Instance()
            materials = []
            for layer in layers:
                m = layer["material"]
                if "nist" in m:
                    materials.append(nist.FindOrBuildMaterial(m["nist"]))
                else:
                    mat = g4.G4Material.GetMaterial(m["name"], False) or nist.ConstructNewMaterial(
                        m["name"], g4.G4StringVector(m["elements"]), g4.G4intVector(m["atoms"]),
                        float(m["density_g_cm3"]) * g4.g / g4.cm3,
                    )
                    materials.append(mat)
            vacuum = nist.FindOrBuildMaterial("G4_Galactic")
            world_s = g4.G4Box("World", half_xy + WORLD_MARGIN_CM * cm, half_xy + WORLD_MARGIN_CM * cm,
                               0.5 * depth + (GUN_OFFSET_CM + WORLD_MARGIN_CM) * cm)
            world_lv = g4.G4LogicalVolume(world_s, vacuum, "World")
            world_pv = g4.G4PVPlacement(None, g4.G4ThreeVector(), world_lv, "World", None, False, 0, False)
            keep.extend([world_s, world_lv, world_pv])
            self.scored = []
            for s in range(n_seg):
                mat = materials[seg_layer[s]]
                half_z = 0.5 * float(seg_edges[s + 1] - seg_edges[s]) * cm
                z_mid = 0.5 * float(seg_edges[s + 1] + seg_edges[s]) * cm - 0.5 * depth
                name = f"seg{s}"
                box = g4.G4Box(name, half_xy, half_xy, half_z)
                box_lv = g4.G4LogicalVolume(box, mat, name)
                box_pv = g4.G4PVPlacement(None, g4.G4ThreeVector(0, 0, z_mid), box_lv, name, world_lv, False,
                                          s * n_radial + n_radial - 1, False)
                keep.extend([box, box_lv, box_pv])
                self.scored.append(box_lv)
                for k in range(len(ring_edges)):
                    r_out = ring_edges[k + 1] * cm if k + 1 < len(ring_edges) else None
                    if r_out is None:
                        break
                    ring = g4.G4Tubs(f"{name}_r{k}", ring_edges[k] * cm, r_out, half_z * INSIDE, 0.0, 2 * np.pi)
                    ring_lv = g4.G4LogicalVolume(ring, mat, f"{name}_r{k}")
                    ring_pv = g4.G4PVPlacement(None, g4.G4ThreeVector(), ring_lv, f"{name}_r{k}", box_lv, False,
                                               s * n_radial + k, False)
                    keep.extend([ring, ring_lv, ring_pv])
                    self.scored.append(ring_lv)
            return world_pv

        def ConstructSDandField(self) -> None:
            mfd = g4.G4MultiFunctionalDetector("calo")
            g4.G4SDManager.GetSDMpointer().AddNewDetector(mfd)
            mfd.RegisterPrimitive(g4.G4PSEnergyDeposit("edep"))
            for lv in self.scored:
                self.SetSensitiveDetector(lv, mfd)
            keep.append(mfd)

    class Gun(g4.G4VUserPrimaryGeneratorAction):
        def __init__(self) -> None:
            super().__init__()
            self.gun = g4.G4ParticleGun(1)
            table = g4.G4ParticleTable.GetParticleTable()
            self.defs = [table.FindParticle(n) for n in names]
            self.gun.SetParticleMomentumDirection(g4.G4ThreeVector(0, 0, 1))
            self.gun.SetParticlePosition(g4.G4ThreeVector(0, 0, -0.5 * depth - GUN_OFFSET_CM * cm))

        def GeneratePrimaries(self, event: Any) -> None:
            i = event.GetEventID()
            self.gun.SetParticleDefinition(self.defs[particle_codes[i]])
            self.gun.SetParticleEnergy(float(energies_gev[i]) * GeV)
            self.gun.GeneratePrimaryVertex(event)

    class Events(g4.G4UserEventAction):
        def __init__(self) -> None:
            super().__init__()
            self.hc_id = -1

        def EndOfEventAction(self, event: Any) -> None:
            if self.hc_id < 0:
                self.hc_id = g4.G4SDManager.GetSDMpointer().GetCollectionID("calo/edep")
            hits = event.GetHCofThisEvent().GetHC(self.hc_id)
            row = cells[event.GetEventID()]
            for copy_no, edep in hits:
                row[copy_no] += edep / GeV

    class Actions(g4.G4VUserActionInitialization):
        def Build(self) -> None:
            self.SetUserAction(Gun())
            self.SetUserAction(Events())

    ui = g4.G4UImanager.GetUIpointer()
    run_manager = g4.G4RunManagerFactory.CreateRunManager(g4.G4RunManagerType.Serial)
    for cmd in ("/control/verbose 0", "/run/verbose 0", "/event/verbose 0", "/tracking/verbose 0",
                "/process/em/verbose 0", "/process/had/verbose 0"):
        ui.ApplyCommand(cmd)
    run_manager.SetUserInitialization(Detector())
    physics = _physics_list(g4, spec["physics_list"])
    physics.SetDefaultCutValue(float(spec["production_cut_mm"]) * mm)
    run_manager.SetUserInitialization(physics)
    run_manager.SetUserInitialization(Actions())
    g4.G4Random.setTheSeed(int(spec["g4_seed"]))
    run_manager.Initialize()
    run_manager.BeamOn(0)  # builds the physics tables, so that the timing below is the event loop alone
    t_init = time.perf_counter()
    run_manager.BeamOn(n_events)
    t_run = time.perf_counter()

    cells3 = cells.reshape(n_events, n_seg, n_radial)
    deposits = np.zeros((n_events, n_layers))
    np.add.at(deposits.T, seg_layer, cells3.sum(axis=2).T)
    voxels = None
    if vox is not None and seg_slice is not None:
        n_depth = len(vox["depth_edges_cm"]) - 1
        voxels = np.zeros((n_events, n_depth, n_radial))
        np.add.at(voxels.transpose(1, 0, 2), seg_slice, cells3.transpose(1, 0, 2))
    info = {
        "geant4_version": str(g4.G4Version).strip("$ ").replace("Name: ", ""),
        "startup_s": round(t_init - t_start, 3), "event_loop_s": round(t_run - t_init, 3),
    }
    return {"deposits": deposits, "voxels": voxels, "info": info}


def write_result(path: Path, deposits: np.ndarray, voxels: np.ndarray | None, info: dict[str, Any]) -> None:
    """Deposits ``(n, L)`` (float64, one column per layer), voxels ``(n, D, R)`` (float32) and run info, to Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, n_layers = deposits.shape
    cols = {f"layer_{i}_gev": pa.array(deposits[:, i], pa.float64()) for i in range(n_layers)}
    if voxels is not None:
        flat = pa.array(voxels.reshape(-1).astype(np.float32), pa.float32())
        cols["voxels_gev"] = pa.FixedSizeListArray.from_arrays(flat, voxels.shape[1] * voxels.shape[2])
    meta = {"n_layers": n_layers, "voxel_shape": None if voxels is None else list(voxels.shape[1:]), "info": info}
    table = pa.table(cols).replace_schema_metadata({b"detopt_geant4": json.dumps(meta).encode()})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_result(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Inverse of `write_result`: ``(deposits, voxels or None, info)``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"detopt_geant4"])
    deposits = np.stack([table.column(f"layer_{i}_gev").to_numpy() for i in range(meta["n_layers"])], axis=1)
    voxels = None
    if meta["voxel_shape"] is not None:
        flat = table.column("voxels_gev").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        voxels = flat.reshape(table.num_rows, *meta["voxel_shape"])
    return deposits, voxels, meta["info"]


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    result = run(spec)
    write_result(out_path, result["deposits"], result["voxels"], result["info"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
