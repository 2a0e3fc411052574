"""The calorimeter suite at 38,400 events on ten more seeds (5-14) for detopt, GP and TPE.

A check of the 5-seed comparison in docs/benchmarks.md with seeds that table does not use.
Run: .venv/bin/python docs/scripts/calorimeter_more_seeds.py  (about 10 minutes on 2 cores)
Writes docs/figures/optbench_calorimeter_38400_seeds5to14.json and prints the medians.
"""

from __future__ import annotations

from pathlib import Path

from detopt.benchmark.harness import run_suite, suite_spec, write_results

OUT = Path(__file__).resolve().parents[1] / "figures" / "optbench_calorimeter_38400_seeds5to14.json"


def main() -> None:
    spec = suite_spec("calorimeter", budget_events=38400, methods=["detopt", "gp", "tpe"],
                      calorimeter_true_events=6000, checkpoints=1)
    spec.seeds = list(range(5, 15))
    document = run_suite(spec, log=print)
    write_results(document, OUT)
    runs = {(r["method"], r["seed"]): r["recommended"][-1] for r in document["runs"]}
    for method, summary in document["summary"]["calorimeter"].items():
        final = summary["final"]
        print(f"{method:<8} median {final['median']:.4g} [{final['q25']:.4g}, {final['q75']:.4g}]")
    for peer in ("gp", "tpe"):
        wins = sum(runs[("detopt", s)] < runs[(peer, s)] for s in spec.seeds)
        print(f"detopt below {peer} in {wins} of {len(spec.seeds)} seeds")


if __name__ == "__main__":
    main()
