"""Wall time of one SRSO iteration of the quick example, split by stage.

Usage: python bench/iteration.py [--quick] [--json PATH] [--iterations N] [--workers N]

Runs ``examples/quick.yaml`` in a temporary run directory (Dask LocalCluster, as configured)
and reports the stage times of the last iteration (the first pays for cold starts:
iteration 0 trains from scratch). ``--quick`` runs one iteration with the serial executor and
half the events (< 1 min).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("iteration_s", "simulation_s", "reconstruction_train_s", "surrogate_train_s", "optimize_s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one iteration, serial executor, half the events")
    parser.add_argument("--json", type=Path, help="write flat metric: number JSON here")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "quick.yaml")
    args = parser.parse_args(argv)

    import yaml

    from detopt.optimize.run import optimize_run, prepare_run

    with tempfile.TemporaryDirectory() as tmp:
        config = yaml.safe_load(args.config.read_text())
        iterations = 1 if args.quick else args.iterations
        config["iterations"] = iterations
        if args.quick:
            config["execution"]["backend"] = "serial"
            config["simulation"]["events_per_design"] //= 2
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        started = time.perf_counter()
        prepared = prepare_run(path, run_dir=Path(tmp) / "run", workers=args.workers)
        records = optimize_run(prepared)
        total = time.perf_counter() - started
    timings = records[-1]["timings"]
    metrics = {key: float(timings[key]) for key in KEYS}
    metrics["run_wall_s"] = total
    metrics["events_per_iteration"] = float(records[-1]["n_events"])
    print(f"{'metric':<26}{'value':>12}")
    for key, value in metrics.items():
        print(f"{key:<26}{value:>12.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
