"""Benchmark of the Geant4 backend against the built-in fast simulator: events per second per process.

Beams: photons and pi+ of exactly 10 GeV, on the axis at normal incidence. Detectors: the AIDO
starting design (Pb 40 / PbWO4 5 / Pb 10 / PbWO4 5 / Pb 10 / PbWO4 5 cm, 50 x 50 cm) and an
"optimized-like" design after AIDO figures 3 (lower) and 5: a thin front absorber, a PbWO4 block,
then a long polystyrene section (Pb 1 / PbWO4 25 / Fe 5 / polystyrene 60 / Fe 5 / polystyrene 60 cm,
illustrative, within the paper's 200 cm and 200k EUR limits; the paper gives no numbers).

    .venv/bin/python bench/geant4.py                 # full run (about 1-2 minutes)
    .venv/bin/python bench/geant4.py --quick         # under a minute
    .venv/bin/python bench/geant4.py --json out.json # also write flat {metric: number}

Geant4: one worker process per (detector, particle), serial run manager, FTFP_BERT hadronics with
EM option 1 (`Geant4Simulator` defaults); the rate is events / event-loop time, after the physics
tables are built (start-up, the import of geant4_pybind plus table building, is reported apart).
Data: the official data sets if found, else detopt's substitute data generated into a temporary
folder (the rate hardly depends on which). Fast simulator: the same beams, per-layer energies,
numpy limited to one thread, in this process; median of 3 runs.

Headline: ``fastsim_over_geant4_speed_ratio``, the fast simulator's rate over Geant4's for the
mixed beam (half photons, half pi+) on the starting detector.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core; must happen before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

#: Beam energy of every figure (GeV).
BEAM_GEV = 10.0
#: Geant4 events per (detector, particle) and fast-simulator events per run, per mode.
SIZES = {"quick": (25, 50_000), "full": (200, 200_000)}
PARTICLES = (("gamma", "gamma"), ("pi+", "pion"))


def _detectors():
    """The AIDO starting design and the optimized-like one (`detopt.simulation.geant4.compare.OPTIMIZED_LIKE_LAYERS`)."""
    from detopt.simulation.geant4.compare import aido_designs

    designs = aido_designs()
    return {"start": designs["AIDO start"], "optimized": designs["optimized-like"]}


def _geant4_rates(n_events: int, data_dir: str | None) -> dict[str, float]:
    from detopt.simulation.geant4 import Geant4Simulator, SubstituteDataWarning

    sim = Geant4Simulator(data_dir=data_dir)
    out: dict[str, float] = {}
    for det_name, det in _detectors().items():
        for particle, key in PARTICLES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SubstituteDataWarning)
                ev = sim.simulate(det, n_events, (particle,), (BEAM_GEV, BEAM_GEV), seed=1)
            suffix = "" if det_name == "start" else "_optimized"
            out[f"geant4_{key}10{suffix}_events_per_s"] = n_events / max(float(ev.metadata["event_loop_s"]), 1e-9)
            out[f"geant4_{key}10{suffix}_startup_s"] = float(ev.metadata["startup_s"])
            out[f"geant4_{key}10{suffix}_mean_deposit_gev"] = float(ev.total_deposit.mean())
            out["geant4_substitute_data"] = float(ev.metadata["geant4_data"] == "substitute")
    return out


def _fastsim_rate(det, particles: tuple[str, ...], n_events: int, repeats: int = 3) -> float:
    from detopt.simulation import FastShowerSimulator

    sim = FastShowerSimulator()
    sim.simulate(det, 1000, particles, (BEAM_GEV, BEAM_GEV), seed=99)  # warm-up
    rates = []
    for seed in range(repeats):
        start = time.perf_counter()
        sim.simulate(det, n_events, particles, (BEAM_GEV, BEAM_GEV), seed=seed)
        rates.append(n_events / (time.perf_counter() - start))
    return statistics.median(rates)


def _mixed(rate_a: float, rate_b: float) -> float:
    """Rate of a beam with half of each kind: events / (time per event averaged over the two)."""
    return 1.0 / (0.5 / rate_a + 0.5 / rate_b)


def measure(quick: bool, data_dir: str | None = None) -> dict[str, float]:
    """All figures of the benchmark, flat ``{metric: number}``."""
    n_g4, n_fast = SIZES["quick" if quick else "full"]
    results: dict[str, float] = {"load_average_1min": os.getloadavg()[0]}
    if data_dir is None:
        from detopt.errors import ConfigError
        from detopt.simulation.geant4 import locate_data

        try:
            locate_data()
        except ConfigError:
            from detopt.simulation.geant4.offline_data import generate

            data_dir = str(generate(Path(tempfile.mkdtemp(prefix="detopt-g4bench-")) / "data"))
    results.update(_geant4_rates(n_g4, data_dir))
    for det_name, det in _detectors().items():
        suffix = "" if det_name == "start" else "_optimized"
        for particle, key in PARTICLES:
            results[f"fastsim_{key}10{suffix}_events_per_s"] = _fastsim_rate(det, (particle,), n_fast)
        results[f"fastsim_mixed10{suffix}_events_per_s"] = _fastsim_rate(det, ("gamma", "pi+"), n_fast)
        g4_mixed = _mixed(results[f"geant4_gamma10{suffix}_events_per_s"], results[f"geant4_pion10{suffix}_events_per_s"])
        results[f"geant4_mixed10{suffix}_events_per_s"] = g4_mixed
        ratio_key = "fastsim_over_geant4_speed_ratio" + suffix
        results[ratio_key] = results[f"fastsim_mixed10{suffix}_events_per_s"] / g4_mixed
    results["geant4_events"] = n_g4
    results["fastsim_events"] = n_fast
    return results


def table(results: dict[str, float]) -> str:
    lines = [f"{'detector':<10} {'beam':<8} {'Geant4 ev/s':>12} {'fastsim ev/s':>13} {'ratio':>9}"
             f" {'G4 start-up s':>14} {'G4 mean Edep GeV':>17}", "-" * 88]
    for det_name in ("start", "optimized"):
        suffix = "" if det_name == "start" else "_optimized"
        for label, key in (("gamma", "gamma"), ("pi+", "pion"), ("mixed", "mixed")):
            g4 = results[f"geant4_{key}10{suffix}_events_per_s"]
            fast = results[f"fastsim_{key}10{suffix}_events_per_s"]
            startup = results.get(f"geant4_{key}10{suffix}_startup_s")
            edep = results.get(f"geant4_{key}10{suffix}_mean_deposit_gev")
            lines.append(
                f"{det_name:<10} {label:<8} {g4:>12,.1f} {fast:>13,.0f} {fast / g4:>9,.0f}"
                f" {'-' if startup is None else f'{startup:.2f}':>14} {'-' if edep is None else f'{edep:.3f}':>17}"
            )
    lines += ["", f"headline: fast simulator / Geant4 = {results['fastsim_over_geant4_speed_ratio']:,.0f}x "
              f"(mixed 10 GeV beam, starting detector, one process each; load average "
              f"{results['load_average_1min']:.1f}; Geant4 on {'substitute' if results['geant4_substitute_data'] else 'official'} data)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (under a minute)")
    parser.add_argument("--json", type=Path, help="write the results as flat JSON {metric: number}")
    parser.add_argument("--data-dir", help="Geant4 data folder (default: found from the environment, else generated)")
    args = parser.parse_args()

    started = time.perf_counter()
    results = measure(args.quick, args.data_dir)
    print(f"Geant4 vs fast simulator, 10 GeV, events/s per process; {'quick' if args.quick else 'full'} run on "
          f"{platform.machine()}, python {platform.python_version()}")
    print(table(results))
    print(f"(benchmark took {time.perf_counter() - started:.1f} s)")
    if args.json is not None:
        from detopt.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
