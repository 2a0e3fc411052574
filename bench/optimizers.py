"""detopt's SRSO loop against CMA-ES, optuna TPE, optuna GP and random search at equal simulation budget.

Usage: python bench/optimizers.py [--quick] [--json PATH] [--suite analytic|calorimeter|tracker|ci] [--seeds N]
       [--methods a,b] [--problems a,b] [--from RESULTS.json]

Runs a suite of :mod:`detopt.benchmark` (the same harness as ``detopt benchmark SUITE``) and prints,
per problem and method, the median true objective of the final recommended design, its gap to the
best known objective as a ratio to detopt's gap (< 1: better than detopt), the median events to
get within 5% of the best known objective and the median wall time. ``--quick`` (< 1 min): the
``ci`` suite (2-parameter noisy bowl, 1,600 events, 2 seeds) and the calorimeter at 9,600 events
(1 seed, designs judged on 2,000 fresh events) with detopt and its peers (the published AIDO rule,
CMA-ES, TPE, GP, random search), and the tracker example at 136,000 events (1 seed; CMA-ES, TPE and random
search: GP takes minutes there); ``calorimeter_detopt_over_best_peer`` and ``tracker_detopt_over_best_peer``
(< 1: detopt ahead) are detopt's median final objective over the best peer's. ``--from`` prints the table of an existing result file (e.g. docs/figures/optbench_analytic.json)
without running anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

PEERS = ("aido", "cma-es", "tpe", "gp", "random")


def _number(value: Any) -> float:
    return math.inf if value == "inf" else float(value)


def metrics_of(document: dict[str, Any]) -> dict[str, float]:
    """Flat ``{metric: number}`` with the unit in the key name (objective: the loss' own units)."""
    out: dict[str, float] = {}
    for problem, per_method in document["summary"].items():
        best = float(document["problems"][problem]["best_known"])
        ref = per_method.get("detopt")
        for method, s in per_method.items():
            key = f"{problem}.{method}"
            final = float(s["final"]["median"])
            out[f"{key}.final_objective_median"] = final
            out[f"{key}.final_gap_rel_median"] = (final - best) / abs(best)
            events = _number(s["events_to_5pct_median"])
            out[f"{key}.events_to_5pct_median_events"] = events if math.isfinite(events) else -1.0
            out[f"{key}.wall_median_s"] = float(s["wall_s_median"])
            if ref is not None:
                ref_gap = float(ref["final"]["median"]) - best
                out[f"{key}.gap_ratio_vs_detopt"] = (final - best) / ref_gap if ref_gap > 0 else math.nan
        peers = [float(per_method[m]["final"]["median"]) for m in PEERS if m in per_method]
        if ref is not None and peers:
            # < 1: detopt's median final design is better than the best peer's
            out[f"{problem}_detopt_over_best_peer"] = float(ref["final"]["median"]) / min(peers)
    out["suite_wall_s"] = float(document["wall_s"])
    return out


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two result documents as one (problems, runs and summaries side by side)."""
    return {**a, "problems": {**a["problems"], **b["problems"]}, "runs": a["runs"] + b["runs"],
            "summary": {**a["summary"], **b["summary"]}, "wall_s": a["wall_s"] + b["wall_s"]}


def print_table(document: dict[str, Any]) -> None:
    header = f"{'problem':<12}{'method':<14}{'final f':>10}{'gap/detopt':>12}{'events to 5%':>14}{'reached':>9}{'wall s':>9}"
    print(header)
    print("-" * len(header))
    for problem, per_method in document["summary"].items():
        best = float(document["problems"][problem]["best_known"])
        ref = per_method.get("detopt")
        ref_gap = None if ref is None else float(ref["final"]["median"]) - best
        for method, s in per_method.items():
            final = float(s["final"]["median"])
            ratio = f"{(final - best) / ref_gap:.2f}" if ref_gap and ref_gap > 0 else "-"
            events = _number(s["events_to_5pct_median"])
            reach = f"{events:,.0f}" if math.isfinite(events) else "-"
            print(f"{problem:<12}{method:<14}{final:>10.4g}{ratio:>12}{reach:>14}{s['reached_5pct']:>5}/{s['seeds']:<3}"
                  f"{float(s['wall_s_median']):>9.1f}")
        print(f"{'':<12}{'(best known)':<14}{best:>10.4g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ci suite, 2 seeds, detopt + black-box methods (< 1 min)")
    parser.add_argument("--json", type=Path, help="write flat metric: number JSON here")
    parser.add_argument("--suite", default="analytic")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--methods", default=None)
    parser.add_argument("--problems", default=None)
    parser.add_argument("--from", dest="from_path", type=Path, help="print the table of an existing result file")
    args = parser.parse_args(argv)

    if args.from_path is not None:
        document = json.loads(args.from_path.read_text())
    else:
        import torch

        from detopt.benchmark.harness import run_suite, suite_spec

        torch.set_num_threads(1)
        suite = "ci" if args.quick else args.suite
        methods = args.methods.split(",") if args.methods else (["detopt", *PEERS] if args.quick else None)
        spec = suite_spec(
            suite, seeds=2 if args.quick and args.seeds is None else args.seeds, methods=methods,
            problems=args.problems.split(",") if args.problems else None,
        )
        document = run_suite(spec)
        if args.quick:  # and the calorimeter at 9,600 events, one seed, a smaller judging sample
            calorimeter = run_suite(suite_spec("calorimeter", seeds=1, methods=methods, calorimeter_true_events=2000))
            document = merge(document, calorimeter)
            # the tracker example at its own budget, one seed, with the peers that take seconds there
            tracker = run_suite(suite_spec("tracker", seeds=1, methods=["detopt", "cma-es", "tpe", "random"]))
            document = merge(document, tracker)
    print_table(document)
    if args.json is not None:
        metrics = metrics_of(document)
        args.json.write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
