"""Judge a design by fresh simulation, not by the surrogate: the reconstruction loss it really reaches.

``fresh_reconstruction_loss`` simulates new events of one design (a seed not used by the run),
trains a fresh reconstruction on part of them and returns its loss (AIDO eq. 10) on the rest.
Comparing the start and the final design this way measures what the optimization gained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detopt.optimize.problem import Problem

__all__ = ["evaluate_run", "fresh_reconstruction_loss"]


def fresh_reconstruction_loss(
    problem: Problem,
    design: Mapping[str, float | str],
    n_events: int = 8000,
    seed: int = 2**31 - 7,
    test_fraction: float = 0.5,
) -> dict[str, Any]:
    """Mean per-event loss on held-out fresh events of ``design`` after training a new reconstruction.

    Uses ``problem.simulate``, ``problem.reconstruction`` (re-fitted from scratch, so the run's
    reconstruction is not touched on disk) and ``problem.loss_fn``.
    """
    import copy

    import torch

    events = problem.simulate(dict(design), n_events, seed)
    n_test = int(round(test_fraction * len(events)))
    test, train = np.arange(n_test), np.arange(n_test, len(events))
    encoding = problem.space.encode([dict(design)])[0]
    reco = copy.deepcopy(problem.reconstruction)
    rows = np.repeat(encoding[None, :], len(train), axis=0)
    reco.fit(rows, events.select(train), seed=seed % 2**31, warm=False)
    test_events = events.select(test)
    predicted = reco.predict(np.repeat(encoding[None, :], len(test), axis=0), test_events)
    loss = problem.loss_fn(torch.as_tensor(predicted), torch.as_tensor(test_events.target)).reshape(len(test), -1).mean(1)
    return {"loss": float(loss.mean()), "loss_error": float(loss.std() / np.sqrt(len(test))), "n_test": len(test)}


def evaluate_run(problem: Problem, run_dir: Any, n_events: int = 8000) -> dict[str, Any]:
    """The start and the final design of the run in ``run_dir`` judged by fresh simulation with ``problem``
    (``fresh_reconstruction_loss``), with the final design's monitored quantities; works for every run,
    started from a configuration or from Python."""
    from pathlib import Path

    import torch

    from detopt.design import DesignSpace
    from detopt.errors import ConfigError
    from detopt.optimize.loop import completed_iterations, iteration_dir

    run = Path(run_dir)
    done = completed_iterations(run)
    if done == 0:
        raise ConfigError("run", f"{run} has no complete iteration to evaluate")
    from detopt.optimize.run_directory import verify_iteration

    verify_iteration(run, 0)
    verify_iteration(run, done - 1)
    start = DesignSpace.load(iteration_dir(run, 0) / "design.json")
    final = DesignSpace.load(iteration_dir(run, done - 1) / "design_next.json")
    if start.names != problem.space.names:
        raise ConfigError("--config", f"the run's parameters ({', '.join(start.names)}) differ from the configuration's "
                          f"({', '.join(problem.space.names)})")
    result: dict[str, Any] = {"iterations": done, "events_per_design": n_events}
    for name, space in (("start", start), ("final", final)):
        design = space.current_design()
        result[name] = {"design": design, **fresh_reconstruction_loss(problem, design, n_events=n_events)}
    theta = torch.as_tensor(final.current_encoding(), dtype=torch.float64)
    for name, monitor in problem.monitors.items():
        result["final"][name] = float(monitor.function(theta))
    result["relative_improvement"] = 1.0 - result["final"]["loss"] / result["start"]["loss"]
    return result
