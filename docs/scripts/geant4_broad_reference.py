"""A broad Geant4 reference for the fast simulator: 32 designs, split into calibration and validation.

The designs are drawn once from a fixed seed (`broad_designs`): 3 to 6 layers alternating passive
(Pb, W, Fe, Cu) and active (PbWO4, BGO, CsI, PbF2, polystyrene, Si) materials, thicknesses
log-uniform in 0.1-60 cm (Si 0.1-2 cm), every material used at least twice, plus the AIDO starting
calorimeter and an optimized-like design (AIDO figures 3 and 5). Each design is simulated with
photons and pi+ at two energies from {2, 5, 10, 20} GeV, 2000 events per point, beams on the axis.
Every third design is a validation design (`is_validation`), fixed here before any fit; the fit of
the fast simulator (docs/scripts/calibrate_fastsim.py) reads the calibration designs only.

    export GEANT4_DATA_DIR=/tmp/g4data; detopt geant4 offline-data $GEANT4_DATA_DIR
    python docs/scripts/geant4_broad_reference.py run --out docs/data/geant4_broad_reference.json   # ~35 min, 2 cores
    python docs/scripts/geant4_broad_reference.py designs                                           # list them

The run resumes: points already in --out are kept. Geant4 runs on detopt's substitute data here
(docs/geant4.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: Seed of the design draw (the list must not change once the reference exists).
DESIGN_SEED = 20261204
N_RANDOM_DESIGNS = 30
PASSIVE = ("Pb", "W", "Fe", "Cu")
ACTIVE = ("PbWO4", "BGO", "CsI", "PbF2", "polystyrene", "Si")
THICKNESS_RANGE_CM = (0.1, 60.0)
SI_THICKNESS_RANGE_CM = (0.1, 2.0)
TRANSVERSE_SIZE_CM = 50.0
#: Energy pairs (GeV), assigned to designs in turn.
ENERGY_PAIRS = ((2.0, 10.0), (5.0, 20.0), (2.0, 20.0), (5.0, 10.0))
PARTICLES = ("gamma", "pi+")
EVENTS_PER_POINT = 2000
#: Quantiles of the total deposit stored per point.
QUANTILES = (0.05, 0.16, 0.5, 0.84, 0.95)

Layers = list[tuple[str, float, bool]]


def broad_designs() -> list[tuple[str, Layers]]:
    """The reference designs, in a fixed order: (name, [(material, thickness cm, active), ...])."""
    from detopt.simulation.geant4.compare import OPTIMIZED_LIKE_LAYERS

    designs: list[tuple[str, Layers]] = [
        ("AIDO start", [("Pb", 40.0, False), ("PbWO4", 5.0, True), ("Pb", 10.0, False), ("PbWO4", 5.0, True),
                        ("Pb", 10.0, False), ("PbWO4", 5.0, True)]),
        ("optimized-like", [tuple(x) for x in OPTIMIZED_LIKE_LAYERS]),  # type: ignore[misc]
    ]
    rng = np.random.default_rng(DESIGN_SEED)
    passive_pool = list(rng.permutation(PASSIVE * 23))
    active_pool = list(rng.permutation(ACTIVE * 15))
    for k in range(N_RANDOM_DESIGNS):
        n = int(rng.integers(3, 7))
        start_active = bool(rng.random() < 0.3)
        layers: Layers = []
        for i in range(n):
            active = (i % 2 == 0) == start_active
            material = str((active_pool if active else passive_pool).pop())
            lo, hi = SI_THICKNESS_RANGE_CM if material == "Si" else THICKNESS_RANGE_CM
            thickness = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            layers.append((material, round(thickness, 2), active))
        designs.append((f"broad_{k:02d}", layers))
    return designs


def is_validation(index: int) -> bool:
    """Every third design (index 2, 5, 8, ...) is held out of the fit."""
    return index % 3 == 2


def points() -> list[dict]:
    out = []
    for i, (name, layers) in enumerate(broad_designs()):
        for j, energy in enumerate(ENERGY_PAIRS[i % len(ENERGY_PAIRS)]):
            for p, particle in enumerate(PARTICLES):
                out.append({"design": name, "design_index": i, "layers": layers, "particle": particle,
                            "energy_gev": energy, "seed": 1000 * i + 10 * j + p + 1,
                            "split": "validation" if is_validation(i) else "calibration"})
    return out


def run(out: Path, data_dir: str | None, workers: int = 2) -> dict:
    from detopt.atomic import write_text_atomic
    from detopt.simulation.geant4.data import SubstituteDataWarning
    from detopt.simulation.geant4.fidelity import point_detector, summarize
    from detopt.simulation.geant4.simulator import Geant4Simulator

    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {
        "description": "Geant4 (geant4_pybind 0.1.3, Geant4 11.4.p01, FTFP_BERT_EMV-noEmExtra, detopt substitute "
        "data) on 32 designs, photons and pi+ on the axis; per-layer mean/std (GeV) and the total deposit's "
        "mean, std and quantiles. Split by design into calibration and validation before any fit.",
        "regenerate": "python docs/scripts/geant4_broad_reference.py run --out docs/data/geant4_broad_reference.json",
        "design_seed": DESIGN_SEED, "transverse_size_cm": TRANSVERSE_SIZE_CM, "quantiles": list(QUANTILES),
        "points": [],
    }
    done = {(p["design"], p["particle"], p["energy_gev"]) for p in result["points"]}
    todo = [p for p in points() if (p["design"], p["particle"], p["energy_gev"]) not in done]
    sim = Geant4Simulator(data_dir=data_dir, timeout_s=7200)
    start = time.perf_counter()

    def one(point: dict) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SubstituteDataWarning)
            e = point["energy_gev"]
            batch = sim.simulate(point_detector(point, TRANSVERSE_SIZE_CM), EVENTS_PER_POINT, (point["particle"],), (e, e),
                                 seed=point["seed"])
        return {**point, "n": EVENTS_PER_POINT, "geant4": summarize(batch.deposits, QUANTILES),
                "active": [bool(a) for a in batch.active], "geant4_data": batch.metadata["geant4_data"],
                "event_loop_s": batch.metadata["event_loop_s"]}

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for point in pool.map(one, todo):
            result["points"].append(point)
            write_text_atomic(out, json.dumps(result, indent=1) + "\n")
            print(f"[{time.perf_counter() - start:7.0f} s] {point['design']} {point['particle']} "
                  f"{point['energy_gev']:g} GeV ({point['split']}): {point['event_loop_s']:.0f} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--data-dir")
    r.add_argument("--workers", type=int, default=2)
    sub.add_parser("designs")
    args = parser.parse_args(argv)
    if args.command == "designs":
        for i, (name, layers) in enumerate(broad_designs()):
            split = "validation " if is_validation(i) else "calibration"
            print(f"{name:15s} {split} " + " / ".join(f"{m} {t:g}{'*' if a else ''}" for m, t, a in layers))
        return 0
    run(args.out, args.data_dir, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
