"""Fault injection: SIGKILL of the `detopt optimize` driver at random times, and one simulation in five failing.

Usage: python bench/faults.py [--quick] [--json PATH] [--kills N] [--seed S]

1. Runs a small two-iteration calorimeter study (``examples/quick.yaml`` cut down, simulations on a
   local Dask cluster of 2 workers) once without interruption through the installed ``detopt optimize`` command.
2. For each of ``--kills`` trials (20 by default, 3 with ``--quick``): starts the same command in a
   fresh run directory, SIGKILLs it at a random time inside one of its two iterations (alternately
   iteration 0 and 1: uniform over the reference run's wall time of that iteration, counted from the
   line the command prints when the iteration starts), reruns the same command to resume,
   and compares the final design (values, material probabilities and sampling covariance) with the
   uninterrupted run's, bit for bit. ``kills_survived`` counts identical results; ``runs_lost``
   counts resumes that did not finish (it must be 0); ``orphans`` counts the killed driver's processes
   (its Dask workers) still running 5 s after the kill, over all kills (it must be 0). The uninterrupted run is repeated at the end
   (``reference_repeat_identical``): a difference there means the code changed during the benchmark.
3. Runs the same study (10 designs per iteration) in-process on a Dask LocalCluster (2 workers) twice: clean, and with every
   simulation attempt failing with probability 1/5 (``tests/faultsim.py``, fault seed recorded);
   reports the retries and dropped designs the run recorded and the time ratio faulty / clean
   (``--quick`` skips the clean run and the ratio).

The kill times and fault draws come from ``--seed`` (printed and written to the JSON). Every run
uses a copy of ``src/`` taken at the start (``PYTHONPATH``), so that edits to the working tree
while the benchmark runs cannot change its results.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DETOPT = Path(sys.executable).with_name("detopt")


def small_config(iterations: int = 2) -> dict[str, Any]:
    """examples/quick.yaml with few designs, events and epochs: two iterations in a few seconds."""
    import yaml

    config = yaml.safe_load((ROOT / "examples" / "quick.yaml").read_text())
    config.update(iterations=iterations, seed=7)
    config["simulation"].update(events_per_design=100, designs_per_iteration=5)
    config["execution"].update(backend="local", n_workers=2, retries=1, torch_threads=1)
    config["reconstruction"].update(epochs=4)
    config["surrogate"].update(epochs=4, hidden=[32, 32], train_steps=20, ddim_steps=4)
    config["optimizer"].update(max_steps=20, events=200, global_designs=0)
    return config


def final_design(run_dir: Path) -> Any:
    """What must not change under kills: the last iteration's next design and its sampling covariance."""
    from detopt.optimize.loop import completed_iterations, iteration_dir, load_records

    records = load_records(run_dir)
    last = iteration_dir(run_dir, completed_iterations(run_dir) - 1)
    covariance = json.loads((last / "covariance_next.json").read_text())["covariance"]
    return records[-1]["next_values"], records[-1]["next_probabilities"], covariance, len(records)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def freeze_sources(folder: Path) -> Path:
    """Copy ``src/`` (and the fault-injection helper) into ``folder`` and put the copy first on the paths."""
    import shutil

    frozen = folder / "src"
    shutil.copytree(ROOT / "src", frozen, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "tests" / "faultsim.py", frozen / "faultsim.py")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(frozen), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(frozen))
    return frozen


def run_to_end(config: Path, run_dir: Path) -> tuple[int, float, str]:
    """``detopt optimize CONFIG --run-dir RUN`` to the end: exit status, wall seconds, stderr."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(DETOPT), "optimize", str(config), "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=900, check=False, env=_env(),
    )
    return proc.returncode, time.perf_counter() - start, proc.stderr


def loop_seconds(config: Path, run_dir: Path) -> tuple[float, float]:
    """Reference run: (whole command, loop only = from the 'run directory' line to the exit) in seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(DETOPT), "optimize", str(config), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    loop_start = time.perf_counter()
    _, err = proc.communicate(timeout=900)
    end = time.perf_counter()
    if proc.returncode != 0 or not first.startswith("run directory"):
        raise RuntimeError(f"reference run failed ({proc.returncode}): {err}")
    return end - start, end - loop_start


def _descendants(pid: int) -> list[int]:
    """Every process whose chain of parents reaches ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_at(config: Path, run_dir: Path, after: str, delay_s: float) -> tuple[bool, int]:
    """Start the command, SIGKILL it ``delay_s`` after the first output line starting with ``after``
    ('run directory': the loop starts; 'iter    0': iteration 0 is complete); False if it ended first.
    Also returns how many of its processes (Dask workers) were still running 5 s after the kill."""
    proc = subprocess.Popen(
        [str(DETOPT), "optimize", str(config), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(), start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(after):
            break
    time.sleep(delay_s)
    alive = proc.poll() is None
    children = _descendants(proc.pid) if alive else []
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.1)
    orphans = [p for p in children if _alive(p)]
    for p in orphans:
        os.kill(p, signal.SIGKILL)
    return alive, len(orphans)


def faulty_run(config_dict: dict[str, Any], folder: Path, failure_rate: float, fault_seed: int) -> dict[str, float]:
    """The study in-process on a Dask LocalCluster, each simulation attempt failing with ``failure_rate``."""
    import torch
    import yaml

    from faultsim import FaultySimulation, attempts_made  # frozen copy of tests/faultsim.py

    from detopt.optimize.run import optimize_run, prepare_run

    config_dict = json.loads(json.dumps(config_dict))
    config_dict["execution"].update(backend="local", n_workers=2)
    config_dict["simulation"].update(designs_per_iteration=10)  # 20 simulations, about 4 injected failures
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict))
    prepared = prepare_run(path, run_dir=folder / "run")
    state = folder / "attempts"
    if failure_rate > 0:
        prepared.problem.simulate = FaultySimulation(
            prepared.problem.simulate, str(state), failure_rate=failure_rate, fault_seed=fault_seed
        )
    torch.set_num_threads(1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the dropped designs are counted from the run directory
        records = optimize_run(prepared)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "iterations": float(len(records)),
        "retries": float(sum(r.get("n_retries", 0) for r in records)),
        "dropped": float(sum(len(r.get("dropped", [])) for r in records)),
        "attempts": float(attempts_made(state)),
        "designs": float(sum(r["n_designs"] for r in records)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 kills instead of 20, no clean comparison run")
    parser.add_argument("--json", type=Path, help="write flat metric: number JSON here")
    parser.add_argument("--kills", type=int, default=None, help="SIGKILL trials (default 20, 3 with --quick)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the kill times and of the injected faults")
    args = parser.parse_args(argv)
    n_kills = args.kills if args.kills is not None else (3 if args.quick else 20)

    import numpy as np
    import yaml

    rng = np.random.default_rng(args.seed)
    bench_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="detopt-faults-") as tmp:
        folder = Path(tmp)
        frozen = freeze_sources(folder)
        config_dict = small_config()
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump(config_dict))
        reference_s, loop_s = loop_seconds(config, folder / "reference")
        reference = final_design(folder / "reference")
        from detopt.optimize.loop import load_records

        spans = [float(r["timings"]["iteration_s"]) for r in load_records(folder / "reference")]
        marks = ["run directory", "iter    0"]  # the lines after which iteration 0 and iteration 1 run
        import detopt

        assert Path(detopt.__file__).is_relative_to(frozen), detopt.__file__

        tried = survived = lost = orphans = 0
        killed_after = [0, 0, 0]  # kills that found 0, 1 or 2 complete iterations
        resume_times: list[float] = []
        attempts = 0
        while tried < n_kills and attempts < 3 * n_kills:
            attempts += 1
            run_dir = folder / f"kill-{attempts:02d}"
            target = tried % 2
            delay = float(rng.uniform(0.0, spans[target]))
            killed, left = kill_at(config, run_dir, marks[target], delay)
            if not killed:
                continue  # the run ended before the kill: not a trial
            orphans += left
            tried += 1
            from detopt.optimize.loop import completed_iterations

            done_at_kill = completed_iterations(run_dir) if run_dir.exists() else 0
            killed_after[min(done_at_kill, 2)] += 1
            status, seconds, err = run_to_end(config, run_dir)
            resume_times.append(seconds)
            if status != 0:
                lost += 1
                print(f"  kill {tried:2d} at {delay:5.2f} s: resume FAILED ({status}): {err.strip()[-300:]}")
                continue
            same = final_design(run_dir) == reference
            survived += same
            print(f"  kill {tried:2d} {delay:5.2f} s into iteration {target} (found {done_at_kill} complete): "
                  f"resumed in {seconds:5.1f} s, final design {'identical' if same else 'DIFFERENT'}")

        # the uninterrupted run again: if it differs, the code changed during the benchmark (a shared working
        # tree) and the comparison above is void
        loop_seconds(config, folder / "reference-again")
        stable = final_design(folder / "reference-again") == reference
        clean = None if args.quick else faulty_run(config_dict, folder / "clean", 0.0, args.seed)
        faulty = faulty_run(config_dict, folder / "faulty", 0.2, args.seed)

    metrics = {
        "kills_tried": float(tried),
        "kills_survived": float(survived),
        "runs_lost": float(lost),
        "orphans": float(orphans),  # driver processes (Dask workers) still running 5 s after a kill, over all kills
        "reference_repeat_identical": float(stable),
        "kills_in_iteration_0": float(killed_after[0]),
        "kills_in_iteration_1": float(killed_after[1]),
        "kills_after_iteration_1": float(killed_after[2]),
        "retries": faulty["retries"],
        "designs_dropped": faulty["dropped"],
        "simulation_attempts": faulty["attempts"],
        "designs_total": faulty["designs"],
        "faulty_iterations_completed": faulty["iterations"],
        "failure_rate_percent": 20.0,
        "seed": float(args.seed),
        "reference_run_s": reference_s,
        "reference_loop_s": loop_s,
        "reference_iteration_0_s": spans[0],
        "reference_iteration_1_s": spans[1],
        "resume_mean_s": float(np.mean(resume_times)) if resume_times else 0.0,
        "faulty_dask_run_s": faulty["wall_s"],
    }
    if clean is not None:
        metrics["clean_dask_run_s"] = clean["wall_s"]
        metrics["faulty_to_clean_time_ratio"] = faulty["wall_s"] / clean["wall_s"]
    metrics["bench_total_s"] = time.perf_counter() - bench_start
    print(f"{'metric':<30}{'value':>12}")
    for key, value in metrics.items():
        print(f"{key:<30}{value:>12.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=2) + "\n")
    if not stable:
        print("WARNING: two uninterrupted runs differ: the code changed while the benchmark ran; rerun it")
    return 0 if lost == 0 and survived == tried and stable else 1


if __name__ == "__main__":
    sys.exit(main())
