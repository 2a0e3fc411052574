"""The simulation side of the gradient check: design utilities of showers, their finite-difference
gradients by the simulator with common random numbers, and the comparison with autograd.

A *utility* is a scalar summary of the showers of one design, written once as a function of
maps (numpy or torch, so the surrogate can differentiate the same code through deterministic
DDIM) and of the design (a mapping ``{"depth_cm": ..., "r_max_cm": ...}`` whose values may be
torch scalars: the voxel edges move with the design). The finite difference (FD) of a utility
by the simulator uses the same seed at theta + h and theta - h (common random numbers, CRN),
so the shower-to-shower noise cancels in the difference, and repeats over seeds for an error bar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from detopt.errors import ConfigError, DataError
from detopt.evaluation import observables as obs

__all__ = [
    "DESIGN_PARAMETERS",
    "UTILITIES",
    "FiniteDifferenceGradient",
    "GradientComparison",
    "compare_gradients",
    "containment_fraction",
    "crn_variance_ratio",
    "design_edges_cm",
    "finite_difference_utility_gradient",
    "make_utility",
    "mean_lateral_containment",
    "relative_energy_resolution",
    "shower_design_simulator",
]

Array = Any  # numpy.ndarray or torch.Tensor
Design = Mapping[str, Any]

#: Fields of a `ShowerCondition` a gradient can be taken with respect to.
DESIGN_PARAMETERS: tuple[str, ...] = ("depth_cm", "r_max_cm", "energy_gev")


# -- utilities ----------------------------------------------------------------------------------
def relative_energy_resolution(maps: Array) -> Array:
    """sigma(E_dep) / <E_dep> of the summed deposit over the showers of one design (sample std, n - 1)."""
    e = obs.total_energy(maps)
    n = e.shape[0]
    if n < 2:
        raise DataError(f"relative_energy_resolution: needs at least 2 showers, got {n}")
    mean = e.mean()
    var = ((e - mean) ** 2).sum() / (n - 1)
    return var**0.5 / mean


def containment_fraction(maps: Array, energy_gev: Array) -> Array:
    """<E_dep> / E_beam: the share of the beam energy the calorimeter contains (longitudinal and lateral)."""
    return obs.total_energy(maps).mean() / energy_gev


def mean_lateral_containment(maps: Array, radial_edges_cm: Array, radius_cm: Array) -> Array:
    """Mean over showers of the energy fraction within ``radius_cm`` of the axis."""
    return obs.lateral_containment(maps, radial_edges_cm, radius_cm).mean()


def design_edges_cm(design: Design, n_depth: int, n_radial: int, radial_power: float) -> tuple[Array, Array]:
    """Depth and ring edges of a design (``depth_cm``, ``r_max_cm``; numbers or torch scalars), as in
    `ShowerDataset.depth_edges_cm` / `radial_edges_cm`, differentiable in the design."""
    depth, r_max = design["depth_cm"], design["r_max_cm"]
    fz = np.linspace(0.0, 1.0, n_depth + 1)
    fr = (np.arange(n_radial + 1) / n_radial) ** radial_power
    if type(depth).__module__.split(".")[0] == "torch" or type(r_max).__module__.split(".")[0] == "torch":
        import torch

        ref = depth if isinstance(depth, torch.Tensor) else r_max
        depth = torch.as_tensor(depth, dtype=ref.dtype)
        r_max = torch.as_tensor(r_max, dtype=ref.dtype)
        return depth * torch.as_tensor(fz, dtype=ref.dtype), r_max * torch.as_tensor(fr, dtype=ref.dtype)
    return float(depth) * fz, float(r_max) * fr


#: Utility names for `make_utility` (the command line and the benchmarks refer to them).
UTILITIES: tuple[str, ...] = ("energy_resolution", "containment", "lateral_containment")


def make_utility(
    name: str, *, n_depth: int, n_radial: int, radial_power: float = 2.0, radius_cm: float | None = None,
) -> Callable[[Array, Design], Array]:
    """The utility ``name`` as a function ``(maps, design) -> scalar`` (numpy or torch).

    ``energy_resolution``: `relative_energy_resolution`; ``containment``: `containment_fraction`
    (needs ``energy_gev`` in the design); ``lateral_containment``: `mean_lateral_containment`
    within the fixed ``radius_cm`` (the rings' edges move with ``r_max_cm``).
    """
    if name == "energy_resolution":
        return lambda maps, design: relative_energy_resolution(maps)
    if name == "containment":
        return lambda maps, design: containment_fraction(maps, design["energy_gev"])
    if name == "lateral_containment":
        if radius_cm is None or not radius_cm > 0:
            raise ConfigError("radius_cm", f"lateral_containment needs a radius > 0 cm, got {radius_cm!r}")

        def lateral(maps: Array, design: Design) -> Array:
            _, r_edges = design_edges_cm(design, n_depth, n_radial, radial_power)
            return mean_lateral_containment(maps, r_edges, radius_cm)

        return lateral
    raise ConfigError("utility", f"unknown utility {name!r}; allowed: {', '.join(UTILITIES)}")


# -- finite differences by simulation -----------------------------------------------------------
def shower_design_simulator(
    geometry: Any, base: Any, n_showers: int, grid: Any, simulator: Any = None,
) -> Callable[[Design, int], np.ndarray]:
    """``simulate(design, seed) -> maps`` for the condition ``base`` (a `ShowerCondition`) with the
    fields in ``design`` (of `DESIGN_PARAMETERS`) replaced, through `simulate_condition`."""
    from detopt.simulation.shower_dataset import simulate_condition

    def simulate(design: Design, seed: int) -> np.ndarray:
        unknown = [k for k in design if k not in DESIGN_PARAMETERS]
        if unknown:
            raise ConfigError("design", f"unknown parameters {unknown}; allowed: {', '.join(DESIGN_PARAMETERS)}")
        cond = replace(base, **{k: float(v) for k, v in design.items()})
        return simulate_condition(geometry, cond, n_showers, grid, seed, simulator)

    return simulate


@dataclass(frozen=True)
class FiniteDifferenceGradient:
    """Central finite differences of a utility, one row per repeat (seed).

    ``mean (p,)`` and ``stderr (p,)`` (standard error of the mean over ``samples (n_repeats, p)``)
    per parameter, in utility units per parameter unit; ``steps (p,)`` the half-steps h;
    ``utility`` the utility at the design itself (mean over repeats); ``seeds`` the simulator
    seeds of theta and theta + h per repeat, ``minus_seeds`` those of theta - h (the same with CRN).
    """

    parameters: tuple[str, ...]
    design: dict[str, float]
    mean: np.ndarray
    stderr: np.ndarray
    samples: np.ndarray
    steps: np.ndarray
    utility: float
    seeds: tuple[int, ...]
    minus_seeds: tuple[int, ...]
    common_random_numbers: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "parameters": list(self.parameters), "design": dict(self.design), "mean": self.mean.tolist(),
            "stderr": self.stderr.tolist(), "steps": self.steps.tolist(), "utility": self.utility,
            "seeds": list(self.seeds), "minus_seeds": list(self.minus_seeds),
            "common_random_numbers": self.common_random_numbers, "n_repeats": int(self.samples.shape[0]),
        }


def finite_difference_utility_gradient(
    utility: Callable[[np.ndarray, Design], float],
    simulate: Callable[[Design, int], np.ndarray],
    design: Mapping[str, float],
    parameters: Sequence[str] | None = None,
    *,
    relative_step: float = 0.05,
    steps: Mapping[str, float] | None = None,
    n_repeats: int = 8,
    seed: int = 0,
    common_random_numbers: bool = True,
) -> FiniteDifferenceGradient:
    """dU/dtheta_k ~ [U(theta + h e_k) - U(theta - h e_k)] / 2h by simulation, mean and standard error
    over ``n_repeats`` seeds drawn from ``seed``.

    With ``common_random_numbers`` both sides of a difference use the same simulator seed (and
    the utility at theta too), otherwise independent seeds (to measure what CRN gains). ``h`` is
    ``steps[k]`` or ``relative_step * |theta_k|``. Costs 2 p + 1 simulations per repeat.
    """
    params = tuple(design) if parameters is None else tuple(parameters)
    if not params:
        raise ConfigError("parameters", "at least one parameter is needed")
    missing = [k for k in params if k not in design]
    if missing:
        raise ConfigError("parameters", f"{missing} not in the design {sorted(design)}")
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, (int, np.integer)) or n_repeats < 2:
        raise ConfigError("n_repeats", f"must be a whole number >= 2 (for an error bar), got {n_repeats!r}")
    if not (0.0 < relative_step < 1.0):
        raise ConfigError("relative_step", f"must be in (0, 1), got {relative_step!r}")
    theta = {k: float(v) for k, v in design.items()}
    h = np.array([
        float(steps[k]) if steps is not None and k in steps else relative_step * abs(theta[k]) for k in params
    ])
    if not (np.isfinite(h).all() and (h > 0).all()):
        raise ConfigError("steps", f"every step must be a finite number > 0, got {dict(zip(params, h.tolist()))}")
    state = np.random.SeedSequence(int(seed)).generate_state(2 * n_repeats, dtype=np.uint32) % (2**31 - 1)
    plus_seeds = tuple(int(s) for s in state[:n_repeats])
    minus_seeds = plus_seeds if common_random_numbers else tuple(int(s) for s in state[n_repeats:])
    samples = np.empty((n_repeats, len(params)))
    centre = np.empty(n_repeats)
    for r in range(n_repeats):
        centre[r] = float(utility(simulate(theta, plus_seeds[r]), theta))
        for k, name in enumerate(params):
            up = {**theta, name: theta[name] + h[k]}
            down = {**theta, name: theta[name] - h[k]}
            u_up = float(utility(simulate(up, plus_seeds[r]), up))
            u_down = float(utility(simulate(down, minus_seeds[r]), down))
            samples[r, k] = (u_up - u_down) / (2.0 * h[k])
    return FiniteDifferenceGradient(
        parameters=params, design=theta, mean=samples.mean(axis=0),
        stderr=samples.std(axis=0, ddof=1) / np.sqrt(n_repeats), samples=samples, steps=h,
        utility=float(centre.mean()), seeds=plus_seeds, minus_seeds=minus_seeds,
        common_random_numbers=common_random_numbers,
    )


def crn_variance_ratio(independent: FiniteDifferenceGradient, common: FiniteDifferenceGradient) -> np.ndarray:
    """Variance of the FD estimate without CRN over that with CRN, per parameter (> 1: CRN helps)."""
    if independent.parameters != common.parameters:
        raise DataError("crn_variance_ratio: the two gradients have different parameters")
    return (independent.stderr / np.maximum(common.stderr, 1e-300)) ** 2


# -- comparison ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GradientComparison:
    """Autograd vs finite differences.

    ``sign_agreement``: share of the significant FD components (|FD| > n_sigma x stderr) whose sign
    autograd matches (NaN if none is significant); ``cosine``: cosine similarity of the two
    gradient vectors (mean over designs when several are given; ``cosines`` per design).
    """

    sign_agreement: float
    cosine: float
    cosines: tuple[float, ...]
    n_significant: int
    n_agree: int
    n_sigma: float

    def as_dict(self) -> dict[str, object]:
        return {"sign_agreement": self.sign_agreement, "cosine": self.cosine, "cosines": list(self.cosines),
                "n_significant": self.n_significant, "n_agree": self.n_agree, "n_sigma": self.n_sigma}


def compare_gradients(
    autograd: np.ndarray, fd_mean: np.ndarray, fd_err: np.ndarray, *, n_sigma: float = 2.0,
    scale: np.ndarray | None = None,
) -> GradientComparison:
    """Compare gradients ``(p,)`` or ``(n_designs, p)``: sign agreement where the FD is significant and
    cosine similarity over the parameters. ``scale (p,)`` (e.g. each parameter's range) multiplies
    both gradients before the cosine, so parameters in different units weigh alike."""
    g = np.atleast_2d(np.asarray(autograd, dtype=np.float64))
    f = np.atleast_2d(np.asarray(fd_mean, dtype=np.float64))
    e = np.atleast_2d(np.asarray(fd_err, dtype=np.float64))
    if not (g.shape == f.shape == e.shape):
        raise DataError(f"compare_gradients: shapes differ: autograd {g.shape}, fd_mean {f.shape}, fd_err {e.shape}")
    if not (np.isfinite(g).all() and np.isfinite(f).all() and np.isfinite(e).all()):
        raise DataError("compare_gradients: gradients contain NaN or infinite values")
    significant = np.abs(f) > n_sigma * e
    agree = significant & (np.sign(g) == np.sign(f))
    n_sig, n_agree = int(significant.sum()), int(agree.sum())
    s = np.ones(g.shape[1]) if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
    if s.shape != (g.shape[1],):
        raise DataError(f"compare_gradients: scale must have {g.shape[1]} entries, got {s.shape}")
    gs, fs = g * s, f * s
    norms = np.linalg.norm(gs, axis=1) * np.linalg.norm(fs, axis=1)
    cos = np.where(norms > 0, (gs * fs).sum(axis=1) / np.where(norms > 0, norms, 1.0), np.nan)
    return GradientComparison(
        sign_agreement=n_agree / n_sig if n_sig else float("nan"), cosine=float(np.mean(cos)),
        cosines=tuple(float(c) for c in cos), n_significant=n_sig, n_agree=n_agree, n_sigma=float(n_sigma),
    )
