"""Benchmark problems: what every optimizer is run on, and how a design is judged.

A :class:`BenchmarkProblem` offers three things to the harness:

- ``make_problem()``: a fresh :class:`detopt.optimize.Problem` (the SRSO loop mutates its
  reconstruction, so every run gets its own);
- ``observe(design, n_events, seed)``: the noisy objective a black-box optimizer sees -- the
  same simulate + reconstruct + per-event loss pipeline the surrogate is trained on, on
  ``n_events`` fresh events (counted against the budget), plus the penalties of the design;
- ``true_objective(design)``: the objective the comparison is made on, not counted in the budget
  (closed form for the analytic problems; a large fresh sample with a retrained reconstruction,
  :func:`detopt.optimize.evaluate.fresh_reconstruction_loss`, for the calorimeter).

Two families: :class:`AnalyticProblem` (a noisy quadratic bowl seen through per-event
"reconstructed" targets, continuous and mixed discrete, with an active length constraint and an
optimum computed by deterministic minimization of the closed form) and
:class:`CalorimeterBenchmark` (the AIDO sampling calorimeter of ``examples/quick.yaml`` on the
built-in fast simulator).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.errors import ConfigError

__all__ = [
    "ANALYTIC_PROBLEMS",
    "AnalyticProblem",
    "BenchmarkProblem",
    "CalorimeterBenchmark",
    "TrackerBenchmark",
    "analytic_problem",
    "design_key",
]

Design = dict[str, float | str]

#: Penalty weight of the length constraint, the form of AIDO eq. 7 (factor 10).
LENGTH_WEIGHT = 10.0
#: Per-target spread of the "reconstructed" targets of the best category (arbitrary units).
BASE_SPREAD = 0.3


def design_key(design: Mapping[str, float | str]) -> tuple[Any, ...]:
    """A hashable key of a concrete design (continuous values rounded to 1e-9), for caching."""
    return tuple(
        (k, round(float(v), 9) if not isinstance(v, str) else v) for k, v in sorted(design.items())
    )


class BenchmarkProblem:
    """Interface of a benchmark problem (see the module docstring); subclasses fill it in."""

    name: str
    description: str

    @property
    def space(self) -> DesignSpace:  # the start design, its bounds (the search box of every method) and sigmas
        raise NotImplementedError

    def make_problem(self) -> Any:
        raise NotImplementedError

    def observe(self, design: Mapping[str, float | str], n_events: int, seed: int) -> float:
        raise NotImplementedError

    def true_objective(self, design: Mapping[str, float | str]) -> float:
        raise NotImplementedError

    @property
    def best_known(self) -> float | None:
        """The optimum of the true objective if known (analytic problems), else None."""
        return None

    def penalty(self, design: Mapping[str, float | str]) -> float:
        """Weighted sum of the problem's penalties (AIDO eq. 7-9) at a concrete design (one-hot categories)."""
        import torch

        from detopt.optimize.penalties import weighted_sum

        problem = self._penalty_problem
        theta = torch.as_tensor(problem.space.encode([dict(design)])[0], dtype=torch.float64)
        with torch.no_grad():
            return float(weighted_sum(problem.penalties, theta))

    @cached_property
    def _penalty_problem(self) -> Any:
        return self.make_problem()


# ---------------------------------------------------------------------------- analytic
@dataclass(frozen=True)
class _BowlSimulation:
    """Per-event "reconstructed" targets of the analytic problem: picklable, seeded.

    T_true ~ U(1, 2) per target; T_reco = T_true + A (x - x*(c)) + s(c) z, z ~ N(0, I), so the
    expected per-event loss (summed squared error) is |A (x - x*(c))|^2 + n_targets s(c)^2.
    """

    names: tuple[str, ...]
    discrete: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    matrix: np.ndarray  # A, n_targets x d
    optimum: np.ndarray  # x* of the best categories, d
    shifts: np.ndarray  # per discrete parameter and category: shift of x* along coordinate j mod d
    spreads: np.ndarray  # per discrete parameter and category: extra per-target spread

    def centre_and_spread(self, design: Mapping[str, float | str]) -> tuple[np.ndarray, float]:
        centre = self.optimum.copy()
        variance = BASE_SPREAD**2
        for j, (name, cats) in enumerate(zip(self.discrete, self.categories, strict=True)):
            c = cats.index(str(design[name]))
            centre[j % len(centre)] += self.shifts[j, c]
            variance += self.spreads[j, c] ** 2
        return centre, float(np.sqrt(variance))

    def __call__(self, design: Mapping[str, float | str], n_events: int, seed: int) -> Any:
        from detopt.optimize.problem import Events

        rng = np.random.default_rng(seed)
        x = np.array([float(design[n]) for n in self.names])
        centre, spread = self.centre_and_spread(design)
        n_targets = self.matrix.shape[0]
        truth = rng.uniform(1.0, 2.0, size=(n_events, n_targets))
        reco = truth + self.matrix @ (x - centre) + spread * rng.standard_normal((n_events, n_targets))
        return Events(features=reco, context=np.zeros((n_events, 0)), target=truth)


def _squared_error(t_reco: Any, t_true: Any) -> Any:
    return ((t_reco - t_true) ** 2).sum(dim=1)


class AnalyticProblem(BenchmarkProblem):
    """A noisy rotated, ill-conditioned quadratic bowl with a length constraint (active at the optimum unless a category moves it inside).

    ``n_continuous`` parameters in the box [0, 10] (start 1.0, sigma ``sigma``) and ``n_discrete``
    three-way choices; each choice shifts the optimum of one coordinate and adds its own noise,
    so the best categories and the best continuous values depend on each other through the
    constraint sum(x) <= ``limit`` (weight 10, AIDO eq. 7 form). The problem is drawn once from
    ``problem_seed`` (recorded in the output).
    """

    def __init__(self, name: str, n_continuous: int, n_discrete: int, problem_seed: int = 0, sigma: float = 0.5,
                 condition: float = 4.0) -> None:
        if n_continuous < 1:
            raise ConfigError("n_continuous", f"must be >= 1, got {n_continuous}")
        if n_discrete < 0:
            raise ConfigError("n_discrete", f"must be >= 0, got {n_discrete}")
        self.name = name
        self.n_continuous, self.n_discrete, self.problem_seed = n_continuous, n_discrete, problem_seed
        self.sigma = sigma
        d = n_continuous
        rng = np.random.default_rng(problem_seed)
        rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
        scales = np.geomspace(1.0, 1.0 / np.sqrt(condition), d)
        optimum = rng.uniform(3.0, 5.0, size=d)
        shifts = np.zeros((n_discrete, 3))
        spreads = np.zeros((n_discrete, 3))
        for j in range(n_discrete):
            shifts[j] = rng.permutation([0.0, -1.0, 1.5])
            spreads[j] = rng.permutation([0.0, 0.4, 0.8])
        self.limit = float(0.8 * optimum.sum())  # the constraint is active at the optimum
        self.names = tuple(f"x{i}" for i in range(d))
        self.discrete_names = tuple(f"c{j}" for j in range(n_discrete))
        self.simulation = _BowlSimulation(
            names=self.names, discrete=self.discrete_names,
            categories=tuple(("a", "b", "c") for _ in range(n_discrete)),
            matrix=(rotation * scales) @ rotation.T, optimum=optimum, shifts=shifts, spreads=spreads,
        )
        self.condition = condition

    @property
    def description(self) -> str:  # type: ignore[override]
        n_cont, n_disc = self.n_continuous, self.n_discrete
        kinds = "continuous" if n_disc == 0 else f"{n_cont} continuous + {n_disc} three-way discrete"
        best = self.optimum[0]
        active = sum(float(best[n]) for n in self.names) > self.limit - 1e-6
        return (
            f"noisy rotated quadratic bowl, {n_cont + n_disc} parameters ({kinds}), condition number "
            f"{self.condition:g}, length constraint sum(x) <= {self.limit:.2f} ({'active' if active else 'inactive'} "
            f"at the optimum), problem seed {self.problem_seed}"
        )

    @cached_property
    def space(self) -> DesignSpace:
        params: list[Any] = [
            ContinuousParameter(name=n, value=1.0, bounds=(0.0, 10.0), sigma=self.sigma) for n in self.names
        ]
        params += [DiscreteParameter(name=n, categories=["a", "b", "c"]) for n in self.discrete_names]
        return DesignSpace(parameters=params)

    def make_problem(self) -> Any:
        from detopt.optimize.penalties import length_penalty_for, total_length_for
        from detopt.optimize.problem import IdentityReconstruction, Monitor, Problem

        space = self.space
        d = self.n_continuous
        return Problem(
            space=space, simulate=self.simulation, reconstruction=IdentityReconstruction(n_targets=d),
            penalties=[(length_penalty_for(space, self.limit, list(self.names)), LENGTH_WEIGHT)],
            loss_fn=_squared_error,
            monitors={"length": Monitor(total_length_for(space, list(self.names)), self.limit)},
        )

    def observe(self, design: Mapping[str, float | str], n_events: int, seed: int) -> float:
        import torch

        events = self.simulation(design, n_events, seed)
        loss = _squared_error(torch.as_tensor(events.features), torch.as_tensor(events.target))
        return float(loss.mean()) + self.penalty(design)

    def expected_loss(self, x: np.ndarray, categories: Mapping[str, str]) -> float:
        """E[per-event loss] = |A (x - x*(c))|^2 + n_targets s(c)^2 (closed form of the simulation)."""
        centre, spread = self.simulation.centre_and_spread(categories)
        r = self.simulation.matrix @ (np.asarray(x, dtype=float) - centre)
        return float(r @ r + self.n_continuous * spread**2)

    def true_objective(self, design: Mapping[str, float | str]) -> float:
        x = np.array([float(design[n]) for n in self.names])
        excess = max(float(x.sum()) - self.limit, 0.0)
        return self.expected_loss(x, design) + LENGTH_WEIGHT * excess**2  # type: ignore[arg-type]

    @cached_property
    def optimum(self) -> tuple[Design, float]:
        """The best design and its objective: exact minimization of the (convex) closed form per category set."""
        from scipy.optimize import minimize

        best: tuple[Design, float] | None = None
        for combo in itertools.product(("a", "b", "c"), repeat=self.n_discrete):
            cats = dict(zip(self.discrete_names, combo, strict=True))

            def f(x: np.ndarray, cats: dict[str, str] = cats) -> float:
                return self.true_objective({**dict(zip(self.names, x, strict=True)), **cats})

            centre, _ = self.simulation.centre_and_spread(cats)
            hessian = 2.0 * self.simulation.matrix.T @ self.simulation.matrix

            def gradient(x: np.ndarray, centre: np.ndarray = centre, hessian: np.ndarray = hessian) -> np.ndarray:
                excess = max(float(x.sum()) - self.limit, 0.0)
                return hessian @ (x - centre) + 2.0 * LENGTH_WEIGHT * excess

            res = minimize(f, np.clip(centre, 0.0, 10.0), jac=gradient, method="L-BFGS-B",
                           bounds=[(0.0, 10.0)] * self.n_continuous, options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10_000})
            design: Design = {**{n: float(v) for n, v in zip(self.names, res.x, strict=True)}, **cats}
            value = self.true_objective(design)
            if best is None or value < best[1]:
                best = (design, value)
        assert best is not None  # at least one category combination (the empty product)
        return best

    @property
    def best_known(self) -> float:
        return self.optimum[1]


#: The analytic suite: name -> (continuous, discrete) parameters; 2, 6 and 12 parameters in all.
ANALYTIC_PROBLEMS: dict[str, tuple[int, int]] = {
    "bowl2": (2, 0),
    "mixed2": (1, 1),
    "bowl6": (6, 0),
    "mixed6": (4, 2),
    "bowl12": (12, 0),
    "mixed12": (8, 4),
}


def analytic_problem(name: str, problem_seed: int = 0) -> AnalyticProblem:
    """One problem of :data:`ANALYTIC_PROBLEMS` by name."""
    if name not in ANALYTIC_PROBLEMS:
        raise ConfigError("problem", f"unknown analytic problem {name!r}; known: {', '.join(ANALYTIC_PROBLEMS)}")
    n_cont, n_disc = ANALYTIC_PROBLEMS[name]
    return AnalyticProblem(name, n_cont, n_disc, problem_seed)


# ---------------------------------------------------------------------------- calorimeter
@dataclass
class CalorimeterBenchmark(BenchmarkProblem):
    """The AIDO sampling calorimeter of a run configuration (default ``examples/quick.yaml``).

    Every thickness is searched in ``thickness_bounds_cm`` (all methods share that box; the
    SRSO loop sees it as the parameter bounds). ``true_events`` fresh events with a retrained
    reconstruction judge a design (half train, half test), seed ``true_seed``.
    """

    config_path: Path
    thickness_bounds_cm: tuple[float, float] = (0.5, 80.0)
    true_events: int = 8000
    true_seed: int = 2**31 - 7
    reconstruction_epochs: int | None = None
    name: str = "calorimeter"
    overrides: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def config(self) -> Any:
        import yaml

        from detopt.optimize.config import validate_config

        raw = yaml.safe_load(Path(self.config_path).read_text(encoding="utf-8"))
        design = raw.get("design") if isinstance(raw, dict) else None
        if not isinstance(design, dict) or not isinstance(design.get("parameters"), list):
            raise ConfigError(str(self.config_path), "the calorimeter benchmark needs a run configuration with the design inline")
        low, high = self.thickness_bounds_cm
        for p in design["parameters"]:
            if p.get("type") == "continuous":
                p["bounds"] = [low, high]
                p["value"] = float(min(max(p["value"], low), high))
        if self.reconstruction_epochs is not None:
            raw.setdefault("reconstruction", {})["epochs"] = self.reconstruction_epochs
        for key, value in self.overrides.items():
            raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
        return validate_config(raw)

    @property
    def description(self) -> str:  # type: ignore[override]
        space = self.space
        return (
            f"AIDO sampling calorimeter ({Path(self.config_path).name}): {len(space.continuous)} thicknesses in "
            f"{self.thickness_bounds_cm} cm + {len(space.discrete)} material choices, fast simulator, "
            f"length <= 200 cm and cost <= 200k EUR penalties; true objective on {self.true_events} fresh events"
        )

    @cached_property
    def space(self) -> DesignSpace:
        return self.config.design_space(Path(self.config_path).parent)

    def make_problem(self) -> Any:
        from detopt.optimize.run import build_problem

        return build_problem(self.config, Path(self.config_path).parent)

    def observe(self, design: Mapping[str, float | str], n_events: int, seed: int) -> float:
        from detopt.optimize.evaluate import fresh_reconstruction_loss

        result = fresh_reconstruction_loss(self._penalty_problem, design, n_events=n_events, seed=seed)
        return result["loss"] + self.penalty(design)

    def true_objective(self, design: Mapping[str, float | str]) -> float:
        from detopt.optimize.evaluate import fresh_reconstruction_loss

        result = fresh_reconstruction_loss(self._penalty_problem, design, n_events=self.true_events, seed=self.true_seed)
        return result["loss"] + self.penalty(design)


# ---------------------------------------------------------------------------- tracker
@dataclass(frozen=True)
class TrackerBenchmark(BenchmarkProblem):
    """The tracker of ``examples/tracker`` (a user's Python simulation, YAML only): lever arm, field and sensor
    under a 3 MEUR budget. The true objective is the closed form of its expected loss plus the penalties, and
    the optimum is known (``tracker.closed_form_optimum``)."""

    example_dir: Path
    name: str = "tracker"

    @cached_property
    def config(self) -> Any:
        from detopt.optimize.config import load_config

        return load_config(Path(self.example_dir) / "config.yaml")[0]

    @cached_property
    def _module(self) -> Any:
        from detopt.entry_points import EntryPoint

        return EntryPoint("tracker:closed_form_optimum", (str(Path(self.example_dir).resolve()),)).load().__globals__

    @property
    def description(self) -> str:  # type: ignore[override]
        return ("three-layer tracker in a solenoid (examples/tracker): lever arm, field, sensor technology; "
                "relative curvature resolution squared under a 3 MEUR budget; closed-form true objective")

    @cached_property
    def space(self) -> DesignSpace:
        return self.config.design_space(Path(self.example_dir))

    def make_problem(self) -> Any:
        from detopt.optimize.run import build_problem

        return build_problem(self.config, Path(self.example_dir))

    def observe(self, design: Mapping[str, float | str], n_events: int, seed: int) -> float:
        from detopt.optimize.evaluate import fresh_reconstruction_loss

        result = fresh_reconstruction_loss(self._penalty_problem, design, n_events=2 * n_events, seed=seed)
        return result["loss"] + self.penalty(design)  # no training: all n_events judge the design

    def true_objective(self, design: Mapping[str, float | str]) -> float:
        loss = self._module["expected_loss"](float(design["lever_arm_m"]), float(design["field_T"]), str(design["sensor"]))
        return float(loss) + self.penalty(design)

    @property
    def best_known(self) -> float:
        return float(self._module["closed_form_optimum"]()["loss"])
