"""Compare the built-in `FastShowerSimulator` with Geant4.

The Geant4 side is the reference of the calibration (docs/scripts/calibrate_fastsim.py, stored in
docs/data/geant4_reference.json); the fast side is whatever the source holds now.

    python -m detopt.simulation.geant4.compare --json OUT.json [--quick] [--data-dir DIR]
    python -m detopt.simulation.geant4.compare --json OUT.json --refresh-fastsim   # after changing fastsim
    python -m detopt.simulation.geant4.compare --json OUT.json --render

Cases: photons and pi+ at 2, 5, 10, 20 GeV on

* the AIDO starting calorimeter and an "optimized-like" design (AIDO figures 3 and 5: thin front
  absorber, PbWO4 block, long polystyrene section): mean and width (standard deviation) of every
  layer's deposit;
* homogeneous blocks (photons: 30 cm PbWO4, 34 X0; pi+: 170 cm Fe, 10 lambda_I) with voxel maps:
  containment (mean deposit / E), longitudinal and radial profiles, the depth and radius holding
  50% and 90% of the deposit.

Each Geant4 run is one `Geant4Simulator.simulate` call; two run at a time (two cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from detopt.detector import SamplingCalorimeter
from detopt.simulation import FastShowerSimulator, VoxelGrid
from detopt.simulation.events import EventBatch
from detopt.simulation.geant4.data import SubstituteDataWarning
from detopt.simulation.geant4.simulator import Geant4Simulator

ENERGIES_GEV = (2.0, 5.0, 10.0, 20.0)
PARTICLES = ("gamma", "pi+")
#: Illustrative optimized design after AIDO figures 3 (lower) and 5 (the paper gives no numbers), cm.
OPTIMIZED_LIKE_LAYERS = (
    ("Pb", 1.0, False), ("PbWO4", 25.0, True), ("Fe", 5.0, False),
    ("polystyrene", 60.0, True), ("Fe", 5.0, False), ("polystyrene", 60.0, True),
)
#: Homogeneous blocks: (name, material, thickness cm, particle, voxel grid).
BLOCKS = (
    ("PbWO4 block 30 cm", "PbWO4", 30.0, "gamma", VoxelGrid(n_depth=30, n_radial=10, r_max_cm=20.0)),
    ("Fe block 170 cm", "Fe", 170.0, "pi+", VoxelGrid(n_depth=34, n_radial=10, r_max_cm=50.0)),
)
#: (Geant4 events per layer case, per block case, fast-simulator events) per mode.
SIZES = {"quick": (60, 30, 5000), "full": (400, 150, 20000)}
#: Agreement goals: mean within 10%, width within 25%.
MEAN_TOLERANCE, WIDTH_TOLERANCE = 0.10, 0.25


def aido_designs() -> dict[str, SamplingCalorimeter]:
    from detopt.examples import aido_calorimeter

    optimized = SamplingCalorimeter.from_layers(OPTIMIZED_LIKE_LAYERS, 50.0)
    start = aido_calorimeter()
    # same layer names as the AIDO layout, so the tables read alike
    optimized = SamplingCalorimeter(
        tuple(type(layer)(name, layer.material, layer.thickness_cm, layer.active)
              for name, layer in zip(start.layer_names, optimized.layers)),
        optimized.transverse_size_cm,
    )
    return {"AIDO start": start, "optimized-like": optimized}


def _layer_stats(batch: EventBatch) -> dict[str, list[float]]:
    return {"mean": batch.deposits.mean(axis=0).tolist(), "std": batch.deposits.std(axis=0, ddof=1).tolist()}


def _fraction_depth(cum: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Where the cumulative fraction ``cum`` (at ``edges[1:]``) reaches ``q`` (linear within bins)."""
    cum = np.concatenate([[0.0], cum])
    i = int(np.searchsorted(cum, q))
    if i >= cum.size:
        return float("nan")
    i = max(i, 1)
    f = (q - cum[i - 1]) / max(cum[i] - cum[i - 1], 1e-300)
    return float(edges[i - 1] + f * (edges[i] - edges[i - 1]))


def _block_stats(batch: EventBatch, det: SamplingCalorimeter, grid: VoxelGrid, energy: float) -> dict[str, object]:
    assert batch.voxels is not None
    vox = batch.voxels.astype(float)
    longi = vox.sum(axis=2).mean(axis=0)
    radial = vox.sum(axis=1).mean(axis=0)
    total = max(longi.sum(), 1e-300)
    z_edges = grid.depth_edges_cm(det.depth_cm)
    r_edges = grid.radial_edges_cm(det.transverse_size_cm)
    return {
        "containment": float(batch.total_deposit.mean() / energy),
        "resolution": float(batch.total_deposit.std(ddof=1) / max(batch.total_deposit.mean(), 1e-300)),
        "longitudinal_fraction": (longi / total).tolist(),
        "radial_fraction": (radial / max(radial.sum(), 1e-300)).tolist(),
        "depth50_cm": _fraction_depth(np.cumsum(longi) / total, z_edges, 0.5),
        "depth90_cm": _fraction_depth(np.cumsum(longi) / total, z_edges, 0.9),
        "radius50_cm": _fraction_depth(np.cumsum(radial) / max(radial.sum(), 1e-300), r_edges, 0.5),
        "radius90_cm": _fraction_depth(np.cumsum(radial) / max(radial.sum(), 1e-300), r_edges, 0.9),
    }


def fastsim_fingerprint() -> str:
    """SHA-256 (first 12 hex digits) of the built-in simulator's source files: which version was compared."""
    import hashlib

    import detopt.simulation as simulation

    root = Path(simulation.__file__).parent
    digest = hashlib.sha256()
    for name in ("fastsim.py", "em_shower.py", "hadron_shower.py", "voxels.py"):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:12]


def _fastsim_case(case: dict, n_fast: int) -> dict:
    """The fast simulator's statistics of one case of a comparison (same detector, beam and grid)."""
    energy = case["energy_gev"]
    if case["kind"] == "layers":
        det = aido_designs()[case["design"]]
        fast = FastShowerSimulator().simulate(det, n_fast, (case["particle"],), (energy, energy), seed=7)
        return _layer_stats(fast)
    name, material, thickness, particle, grid = next(b for b in BLOCKS if b[0] == case["block"])
    det = SamplingCalorimeter.from_layers([(material, thickness, True)], 50.0)
    fast = FastShowerSimulator(voxels=grid).simulate(det, n_fast, (particle,), (energy, energy), seed=7)
    return _block_stats(fast, det, grid, energy)


def refresh_fastsim(comparison: dict, n_fast: int | None = None) -> dict:
    """Recompute the fast simulator's side of a stored comparison (the Geant4 side is kept): for tuning."""
    n_fast = n_fast or SIZES["quick" if comparison.get("quick") else "full"][2]
    cases = [{**case, "fastsim": _fastsim_case(case, n_fast)} for case in comparison["cases"]]
    return {**comparison, "cases": cases, "fastsim_fingerprint": fastsim_fingerprint(), "n_fastsim": n_fast}


def run_comparison(quick: bool = False, data_dir: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Simulate every case with both simulators; returns a JSON-able dict of the statistics."""
    n_layers_g4, n_block_g4, n_fast = SIZES["quick" if quick else "full"]
    designs = aido_designs()
    jobs: list[tuple[str, Callable[[], dict]]] = []

    def g4_run(sim: Geant4Simulator, det: SamplingCalorimeter, n: int, particle: str, energy: float) -> EventBatch:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SubstituteDataWarning)
            return sim.simulate(det, n, (particle,), (energy, energy), seed=int(energy * 100) + len(particle))

    g4_layers = Geant4Simulator(data_dir=data_dir)
    for design, det in designs.items():
        for particle in PARTICLES:
            for energy in ENERGIES_GEV:
                def job(det=det, particle=particle, energy=energy, design=design) -> dict:
                    g4 = g4_run(g4_layers, det, n_layers_g4, particle, energy)
                    fast = FastShowerSimulator().simulate(det, n_fast, (particle,), (energy, energy), seed=7)
                    return {"kind": "layers", "design": design, "particle": particle, "energy_gev": energy,
                            "layers": list(det.layer_names), "materials": [ly.material.name for ly in det.layers],
                            "active": [bool(a) for a in det.active_mask], "n_geant4": n_layers_g4,
                            "geant4": _layer_stats(g4), "fastsim": _layer_stats(fast),
                            "geant4_data": g4.metadata["geant4_data"],
                            "geant4_event_loop_s": g4.metadata["event_loop_s"]}
                jobs.append((f"{design} {particle} {energy:g} GeV", job))
    for name, material, thickness, particle, grid in BLOCKS:
        det = SamplingCalorimeter.from_layers([(material, thickness, True)], 50.0)
        g4_block = Geant4Simulator(voxels=grid, data_dir=data_dir)
        for energy in ENERGIES_GEV:
            def job(det=det, grid=grid, particle=particle, energy=energy, name=name, g4_block=g4_block) -> dict:
                g4 = g4_run(g4_block, det, n_block_g4, particle, energy)
                fast = FastShowerSimulator(voxels=grid).simulate(det, n_fast, (particle,), (energy, energy), seed=7)
                return {"kind": "block", "block": name, "particle": particle, "energy_gev": energy,
                        "n_geant4": n_block_g4, "depth_cm": det.depth_cm,
                        "geant4": _block_stats(g4, det, grid, energy), "fastsim": _block_stats(fast, det, grid, energy),
                        "geant4_event_loop_s": g4.metadata["event_loop_s"]}
            jobs.append((f"{name} {particle} {energy:g} GeV", job))

    results = []
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [(label, pool.submit(job)) for label, job in jobs]
        for label, fut in futures:
            results.append(fut.result())
            log(f"[{time.perf_counter() - start:7.1f} s] {label}")
    return {"quick": quick, "cases": results, "mean_tolerance": MEAN_TOLERANCE, "width_tolerance": WIDTH_TOLERANCE,
            "fastsim_fingerprint": fastsim_fingerprint(), "n_fastsim": n_fast}


#: Mean deposit (GeV) below which, in both simulators, a layer is not judged (a few MeV of stray particles).
MIN_JUDGED_DEPOSIT_GEV = 0.005


def layer_table(comparison: dict, active_only: bool = True) -> str:
    """Markdown table: per layer, mean and std of both simulators (with the statistical error of Geant4's
    mean), fast/Geant4 ratios, and the verdict (mean within 10%, width within 25%; not judged where both
    means are below 5 MeV)."""
    lines = ["| design | beam | layer | Geant4 mean +- std (GeV) [stat. err. of mean] | fast mean +- std (GeV) | "
             "fast/G4 mean | fast/G4 std | goal met |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for case in comparison["cases"]:
        if case["kind"] != "layers":
            continue
        for i, layer in enumerate(case["layers"]):
            if active_only and not case["active"][i]:
                continue
            gm, gs = case["geant4"]["mean"][i], case["geant4"]["std"][i]
            fm, fs = case["fastsim"]["mean"][i], case["fastsim"]["std"][i]
            beam = f"{case['particle']} {case['energy_gev']:g} GeV"
            err = f"{gs / np.sqrt(case['n_geant4']) / gm:.1%}" if gm > 0 else "-"
            head = (f"| {case['design']} | {beam} | {layer} ({case['materials'][i]}) | {gm:.3g} +- {gs:.2g} "
                    f"[{err}] | {fm:.3g} +- {fs:.2g} | ")
            if max(gm, fm) < MIN_JUDGED_DEPOSIT_GEV:
                lines.append(head + "- | - | both < 5 MeV |")
                continue
            rm = fm / gm if gm > 0 else float("inf")
            rs = fs / gs if gs > 0 else float("inf")
            ok = abs(rm - 1) <= comparison["mean_tolerance"] and abs(rs - 1) <= comparison["width_tolerance"]
            lines.append(head + f"{rm:.3g} | {rs:.3g} | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def block_table(comparison: dict) -> str:
    lines = ["| block | beam | containment G4 / fast | resolution G4 / fast | depth 50% G4 / fast (cm) | "
             "depth 90% G4 / fast (cm) | radius 50% G4 / fast (cm) | radius 90% G4 / fast (cm) |",
             "|---|---|---|---|---|---|---|---|"]
    for case in comparison["cases"]:
        if case["kind"] != "block":
            continue
        g, f = case["geant4"], case["fastsim"]
        beam = f"{case['particle']} {case['energy_gev']:g} GeV"
        lines.append(
            f"| {case['block']} | {beam} | {g['containment']:.3f} / {f['containment']:.3f} | "
            f"{g['resolution']:.3f} / {f['resolution']:.3f} | {g['depth50_cm']:.1f} / {f['depth50_cm']:.1f} | "
            f"{g['depth90_cm']:.1f} / {f['depth90_cm']:.1f} | {g['radius50_cm']:.2f} / {f['radius50_cm']:.2f} | "
            f"{g['radius90_cm']:.2f} / {f['radius90_cm']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, required=True, help="where to write the results (or read, with --render)")
    parser.add_argument("--data-dir")
    parser.add_argument("--render", action="store_true", help="only print the tables of an existing --json file")
    parser.add_argument("--refresh-fastsim", action="store_true",
                        help="rerun only the fast simulator on the cases of an existing --json file and update it")
    args = parser.parse_args(argv)
    from detopt.atomic import write_text_atomic

    if args.render:
        comparison = json.loads(args.json.read_text(encoding="utf-8"))
    elif args.refresh_fastsim:
        comparison = refresh_fastsim(json.loads(args.json.read_text(encoding="utf-8")))
        write_text_atomic(args.json, json.dumps(comparison, indent=1) + "\n")
    else:
        comparison = run_comparison(args.quick, args.data_dir, log=lambda s: print(s, file=sys.stderr, flush=True))
        write_text_atomic(args.json, json.dumps(comparison, indent=1) + "\n")
    print(f"fast simulator source fingerprint: {comparison.get('fastsim_fingerprint', 'unknown')}\n")
    print(layer_table(comparison))
    print()
    print(block_table(comparison))
    return 0


if __name__ == "__main__":
    sys.exit(main())
