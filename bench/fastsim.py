"""Benchmark of the built-in fast shower simulator: showers per second on one core and on two processes.

Detector: the AIDO starting design (6 layers, Pb / PbWO4, 40-5-10-5-10-5 cm). Beam: energy
uniform in 1-20 GeV; "mixed" = photons and pi+ with equal probability (as in the AIDO paper).

    .venv/bin/python bench/fastsim.py                 # full run (about 1-2 minutes)
    .venv/bin/python bench/fastsim.py --quick         # under a minute
    .venv/bin/python bench/fastsim.py --json out.json # also write flat {metric: number}

One core: numpy, OpenBLAS and OpenMP are limited to one thread (set below, before numpy is
imported), and everything runs in this process. Two processes: a
``concurrent.futures.ProcessPoolExecutor`` whose two workers each simulate half of the
events with their own seed; the one-process figure runs the same work in a one-worker pool
(workers return only the event count, so no event transfer is timed). Each figure is the
median over repeats after a warm-up run. The 1-minute load average is recorded: on a busy
machine the figures, and above all the 2-process speedup, are lower than on an idle one. Targets: >= 50,000 showers/s for
per-layer energies and >= 5,000 showers/s with 24x16 voxel maps, on one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core; must happen before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

#: Per-layer showers per second on one core required (6-layer AIDO detector, mixed, 1-20 GeV).
TARGET_PER_LAYER_SHOWERS_PER_S = 50_000
#: Showers per second with 24 x 16 voxel maps on one core required.
TARGET_VOXEL_SHOWERS_PER_S = 5_000
#: Beam of the benchmark (GeV), as in the AIDO paper.
ENERGY_RANGE_GEV = (1.0, 20.0)
MIXED = ("gamma", "pi+")
VOXELS = (24, 16)

#: (per-layer events, voxel events, repeats) per mode.
SIZES = {"quick": (100_000, 10_000, 3), "full": (400_000, 40_000, 5)}


def _simulate(n_events: int, particles: tuple[str, ...], seed: int, voxels: tuple[int, int] | None = None) -> int:
    """Simulate ``n_events`` on the AIDO starting detector; returns the number of events (also a pool task)."""
    from detopt.examples import aido_calorimeter
    from detopt.simulation import FastShowerSimulator, VoxelGrid

    grid = None if voxels is None else VoxelGrid(n_depth=voxels[0], n_radial=voxels[1])
    batch = FastShowerSimulator(voxels=grid).simulate(aido_calorimeter(), n_events, particles, ENERGY_RANGE_GEV, seed)
    return len(batch)


def _rate(run: Callable[[int], int], n_events: int, repeats: int) -> float:
    """Median showers per second of ``run(seed)`` over ``repeats`` timed calls (after one warm-up call)."""
    run(10_000)
    rates = []
    for repeat in range(repeats):
        start = time.perf_counter()
        done = run(repeat)
        rates.append(done / (time.perf_counter() - start))
    if done != n_events:
        raise RuntimeError(f"simulated {done} events, expected {n_events}")
    return statistics.median(rates)


def _pool_rate(n_workers: int, n_events: int, repeats: int) -> float:
    """Showers per second of ``n_workers`` processes, each simulating n_events / n_workers mixed per-layer showers."""
    share = n_events // n_workers
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        list(pool.map(_simulate, [1_000] * n_workers, [MIXED] * n_workers, range(n_workers)))  # start + import

        def run(seed: int) -> int:
            seeds = [1_000 * seed + k for k in range(n_workers)]
            return sum(pool.map(_simulate, [share] * n_workers, [MIXED] * n_workers, seeds))

        return _rate(run, share * n_workers, repeats)


def measure(quick: bool) -> dict[str, float]:
    """All figures of the benchmark, flat ``{metric: number}``."""
    n_layer, n_voxel, repeats = SIZES["quick" if quick else "full"]
    results: dict[str, float] = {"load_average_1min": os.getloadavg()[0]}
    results["per_layer_showers_per_s"] = _rate(lambda s: _simulate(n_layer, MIXED, s), n_layer, repeats)
    results["per_layer_gamma_showers_per_s"] = _rate(lambda s: _simulate(n_layer, ("gamma",), s), n_layer, repeats)
    results["per_layer_pion_showers_per_s"] = _rate(lambda s: _simulate(n_layer, ("pi+",), s), n_layer, repeats)
    results["voxel_showers_per_s"] = _rate(lambda s: _simulate(n_voxel, MIXED, s, VOXELS), n_voxel, repeats)
    results["voxel_map_size"] = VOXELS[0] * VOXELS[1]
    results["per_layer_showers_per_s_1proc"] = _pool_rate(1, n_layer, repeats)
    results["per_layer_showers_per_s_2proc"] = _pool_rate(2, n_layer, repeats)
    results["speedup_2proc"] = results["per_layer_showers_per_s_2proc"] / results["per_layer_showers_per_s_1proc"]
    results["per_layer_events"] = n_layer
    results["voxel_events"] = n_voxel
    results["repeats"] = repeats
    results["cpu_count"] = os.cpu_count() or 0
    return results


ROWS = (
    ("per-layer, gamma + pi+, 1 core", "per_layer_showers_per_s", TARGET_PER_LAYER_SHOWERS_PER_S),
    ("per-layer, gamma only, 1 core", "per_layer_gamma_showers_per_s", None),
    ("per-layer, pi+ only, 1 core", "per_layer_pion_showers_per_s", None),
    ("24x16 voxels (384), gamma + pi+, 1 core", "voxel_showers_per_s", TARGET_VOXEL_SHOWERS_PER_S),
    ("per-layer, gamma + pi+, 1 worker process", "per_layer_showers_per_s_1proc", None),
    ("per-layer, gamma + pi+, 2 worker processes", "per_layer_showers_per_s_2proc", None),
)


def table(results: dict[str, float], markdown: bool = False) -> str:
    """The results as a text (or Markdown) table with the targets."""
    lines = []
    if markdown:
        lines += ["| case | showers/s | target | met |", "|---|---:|---:|---|"]
    else:
        lines += [f"{'case':<44} {'showers/s':>12} {'target':>10}  met", "-" * 74]
    for label, key, target in ROWS:
        value = results[key]
        target_text = f"{target:,}" if target else "-"
        met = ("yes" if value >= target else "NO") if target else ""
        if markdown:
            lines.append(f"| {label} | {value:,.0f} | {target_text} | {met} |")
        else:
            lines.append(f"{label:<44} {value:>12,.0f} {target_text:>10}  {met}")
    speedup = (
        f"speedup with 2 processes: {results['speedup_2proc']:.2f}x "
        f"(cpu_count {results['cpu_count']:.0f}, load average {results['load_average_1min']:.1f})"
    )
    lines += ["", speedup]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and repeats (under a minute)")
    parser.add_argument("--json", type=Path, help="write the results as flat JSON {metric: number}")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs/benchmarks.md)")
    args = parser.parse_args()

    started = time.perf_counter()
    results = measure(args.quick)
    print(f"fast simulator, AIDO 6-layer starting detector, {ENERGY_RANGE_GEV[0]:g}-{ENERGY_RANGE_GEV[1]:g} GeV; "
          f"{'quick' if args.quick else 'full'} run on {platform.machine()}, python {platform.python_version()}")
    print(table(results, markdown=args.markdown))
    print(f"(benchmark took {time.perf_counter() - started:.1f} s)")
    if args.json is not None:
        from detopt.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
