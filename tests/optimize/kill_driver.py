"""A driver process for SIGKILL tests: runs the bowl-problem SRSO loop and kills itself at an injected point.

Usage: ``python kill_driver.py RUN_DIR ITERATIONS KILL_AT [before|after]``. ``KILL_AT`` counts the
atomic renames (``os.replace``, the moment a file of the run directory appears): the process
SIGKILLs itself just before or just after rename number ``KILL_AT`` (0: never, run to the end).
It prints ``renames N`` at the end of an uninterrupted run, so a test can pick points in range.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch
from bowl_problem import bowl_problem

from detopt.optimize.loop import LoopSettings, run_loop

SETTINGS = LoopSettings(
    designs_per_iteration=4, events_per_design=100, seed=11, lr=0.05, max_steps=20, optimizer_events=200,
    surrogate_epochs=5, surrogate_hidden=(32, 32), surrogate_train_steps=20,
)


def main() -> None:
    run_dir, iterations, kill_at = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    when = sys.argv[4] if len(sys.argv) > 4 else "after"
    torch.set_num_threads(1)
    real_replace = os.replace
    count = 0

    def counting_replace(src: str, dst: str) -> None:
        nonlocal count
        count += 1
        if count == kill_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if count == kill_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = counting_replace  # type: ignore[assignment]
    run_loop(bowl_problem(), SETTINGS, run_dir, iterations)
    print(f"renames {count}", flush=True)


if __name__ == "__main__":
    main()
