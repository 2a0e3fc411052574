"""Do the fast simulator and Geant4 rank the designs of an optimization run alike?

Takes ten designs along a run's trajectory (the designs of evenly spaced iterations, the last one being
the final recommendation), judges each by fresh simulation with both simulators (a new reconstruction
trained on half of the events, the AIDO eq.-10 loss on the other half: `fresh_reconstruction_loss`), and
compares the two orderings: Spearman's rho, Kendall's tau, and how many designs keep their rank within
one place.

    export GEANT4_DATA_DIR=/tmp/g4data        # detopt geant4 offline-data $GEANT4_DATA_DIR
    bash scripts/demo.sh                       # the run: runs/quick
    python docs/scripts/geant4_trajectory_ordering.py runs/quick --json docs/data/geant4_trajectory_ordering.json
    python docs/scripts/geant4_trajectory_ordering.py runs/quick --json ... --refresh-fastsim   # after changing fastsim

About 15 minutes on 2 cores (3000 events per design and simulator); the refresh about 30 s.
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


def trajectory_designs(run: Path, n: int) -> list[tuple[str, dict]]:
    """``n`` distinct designs along the run: iteration designs at evenly spaced iterations, then the final one
    (an iteration that kept its predecessor's design is skipped)."""
    from detopt.design import DesignSpace
    from detopt.optimize.loop import completed_iterations, iteration_dir

    done = completed_iterations(run)
    paths = [(f"iteration {i}", iteration_dir(run, i) / "design.json") for i in range(done)]
    paths.append(("final", iteration_dir(run, done - 1) / "design_next.json"))
    distinct: list[tuple[str, dict]] = []
    for label, path in paths:
        design = DesignSpace.load(path).current_design()
        if not distinct or design != distinct[-1][1]:
            distinct.append((label, design))
    picks = np.unique(np.round(np.linspace(0, len(distinct) - 1, n)).astype(int))
    return [distinct[i] for i in picks]


def ranks(losses: np.ndarray) -> np.ndarray:
    """Rank of each design, 1 = lowest loss."""
    return np.argsort(np.argsort(losses)) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--designs", type=int, default=10)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--refresh-fastsim", action="store_true",
                        help="keep the Geant4 side of an existing --json file, rerun only the fast simulator")
    args = parser.parse_args(argv)
    from scipy import stats

    from detopt.atomic import write_text_atomic
    from detopt.optimize.config import load_config
    from detopt.optimize.evaluate import fresh_reconstruction_loss
    from detopt.optimize.run import build_problem
    from detopt.simulation.geant4.data import SubstituteDataWarning

    cfg, base = load_config(args.run / "config.yaml")
    problems = {sim: build_problem(cfg, base, simulator=sim) for sim in ("fastsim", "geant4")}
    designs = trajectory_designs(args.run, args.designs)
    start = time.perf_counter()

    def judge(item: tuple[str, dict], sim: str) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SubstituteDataWarning)
            out = fresh_reconstruction_loss(problems[sim], item[1], n_events=args.events)
        print(f"[{time.perf_counter() - start:6.0f} s] {item[0]:13s} {sim:8s} L = {out['loss']:.4g} "
              f"+- {out['loss_error']:.2g}", flush=True)
        return out

    if args.refresh_fastsim:
        stored = json.loads(args.json.read_text(encoding="utf-8"))
        designs = [(d["label"], d["design"]) for d in stored["designs"]]
        g4 = [d["geant4"] for d in stored["designs"]]
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:
            g4 = list(pool.map(lambda d: judge(d, "geant4"), designs))
    fast = [judge(d, "fastsim") for d in designs]
    lf, lg = np.array([f["loss"] for f in fast]), np.array([g["loss"] for g in g4])
    rf, rg = ranks(lf), ranks(lg)
    rho = stats.spearmanr(lf, lg).statistic
    tau = stats.kendalltau(lf, lg).statistic
    result = {
        "run": str(args.run), "events_per_design": args.events,
        "designs": [{"label": label, "design": design, "fastsim": f, "geant4": g}
                    for (label, design), f, g in zip(designs, fast, g4)],
        "spearman_rho": float(rho), "kendall_tau": float(tau),
        "designs_ranked_within_one_place": int(np.sum(np.abs(rf - rg) <= 1)), "n_designs": len(designs),
    }
    write_text_atomic(args.json, json.dumps(result, indent=1) + "\n")
    print("| design | fast simulator L | Geant4 L | rank fast | rank Geant4 |\n|---|---:|---:|---:|---:|")
    for (label, _), f, g, a, b in zip(designs, fast, g4, rf, rg):
        print(f"| {label} | {f['loss']:.4g} +- {f['loss_error']:.2g} | {g['loss']:.4g} +- {g['loss_error']:.2g} "
              f"| {a} | {b} |")
    print(f"\nSpearman rho {rho:.3f}, Kendall tau {tau:.3f}, "
          f"{result['designs_ranked_within_one_place']} of {len(designs)} designs ranked within one place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
