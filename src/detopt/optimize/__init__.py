"""The SRSO optimization loop of the AIDO paper: objective (eq. 2), penalties (eq. 3, 7-9),
trust region (eq. 4), covariance update (eq. 5), Adam on values and logits, run directory and resume.

Names are imported lazily (PEP 562), so importing ``detopt.optimize.cli_commands`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "CalorimeterSimulation": "detopt.optimize.problem",
    "DesignOptimizer": "detopt.optimize.optimizer",
    "Events": "detopt.optimize.problem",
    "IdentityReconstruction": "detopt.optimize.problem",
    "LoopSettings": "detopt.optimize.loop",
    "Monitor": "detopt.optimize.problem",
    "NetworkReconstruction": "detopt.optimize.problem",
    "OptimizationResult": "detopt.optimize.optimizer",
    "OptimizationStatus": "detopt.optimize.optimizer",
    "Problem": "detopt.optimize.problem",
    "ReconstructionStep": "detopt.optimize.problem",
    "RunConfig": "detopt.optimize.config",
    "SimulationFn": "detopt.optimize.problem",
    "boundary_penalty": "detopt.optimize.penalties",
    "boundary_penalty_for": "detopt.optimize.penalties",
    "build_problem": "detopt.optimize.run",
    "completed_iterations": "detopt.optimize.loop",
    "cost_penalty": "detopt.optimize.penalties",
    "cost_penalty_for": "detopt.optimize.penalties",
    "expected_cost": "detopt.optimize.penalties",
    "expected_cost_for": "detopt.optimize.penalties",
    "fresh_reconstruction_loss": "detopt.optimize.evaluate",
    "evaluate_run": "detopt.optimize.evaluate",
    "iteration_dir": "detopt.optimize.loop",
    "length_penalty": "detopt.optimize.penalties",
    "length_penalty_for": "detopt.optimize.penalties",
    "load_config": "detopt.optimize.config",
    "load_records": "detopt.optimize.loop",
    "mahalanobis": "detopt.optimize.trust_region",
    "optimize_run": "detopt.optimize.run",
    "prepare_run": "detopt.optimize.run",
    "run_loop": "detopt.optimize.loop",
    "total_length_for": "detopt.optimize.penalties",
    "trust_region_ok": "detopt.optimize.trust_region",
    "updated_covariance": "detopt.optimize.trust_region",
    "validate_config": "detopt.optimize.config",
    "weighted_sum": "detopt.optimize.penalties",
}

__all__ = [
    "CalorimeterSimulation",
    "DesignOptimizer",
    "Events",
    "IdentityReconstruction",
    "LoopSettings",
    "Monitor",
    "NetworkReconstruction",
    "OptimizationResult",
    "OptimizationStatus",
    "Problem",
    "ReconstructionStep",
    "RunConfig",
    "SimulationFn",
    "boundary_penalty",
    "boundary_penalty_for",
    "build_problem",
    "completed_iterations",
    "cost_penalty",
    "cost_penalty_for",
    "expected_cost",
    "expected_cost_for",
    "fresh_reconstruction_loss",
    "evaluate_run",
    "iteration_dir",
    "length_penalty",
    "length_penalty_for",
    "load_config",
    "load_records",
    "mahalanobis",
    "optimize_run",
    "prepare_run",
    "run_loop",
    "total_length_for",
    "trust_region_ok",
    "updated_covariance",
    "validate_config",
    "weighted_sum",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'detopt.optimize' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
