"""Penalty terms of the optimizer objective (AIDO eq. 2): boundaries (eq. 3), length (eq. 7), cost (eq. 8-9).

Every penalty is a plain differentiable function of the *design tensor*: the encoding
of the current design (continuous values, then the probabilities of each discrete
parameter, the order of :attr:`detopt.design.DesignSpace.encoding_names`), a 1-d tensor
of length ``encoding_size``. Penalties compose as a list of ``(callable, weight)``
pairs (botorch style: wrap, do not subclass), see :func:`weighted_sum`.

The equations are written once, as functions of plain tensors; the ``*_penalty_for``
factories bind them to a :class:`~detopt.design.DesignSpace` (which entries are
thicknesses, which carry costs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from detopt.design import DesignSpace, DiscreteParameter
from detopt.errors import ConfigError

__all__ = [
    "BOUNDARY_SCALE",
    "Penalty",
    "WeightedPenalty",
    "boundary_penalty",
    "boundary_penalty_for",
    "built_cost_for",
    "design_tensors",
    "linear_constraint_for",
    "cost_penalty",
    "cost_penalty_for",
    "default_cost_lengths",
    "expected_cost",
    "expected_cost_for",
    "length_penalty",
    "length_penalty_for",
    "optimization_objective",
    "total_length_for",
    "weighted_sum",
]

Penalty = Callable[[torch.Tensor], torch.Tensor]
"""A differentiable function of the design tensor (``encoding_size``) returning a 0-d tensor."""

WeightedPenalty = tuple[Penalty, float]

BOUNDARY_SCALE = 1.1
"""AIDO eq. 3: the boundary penalty switches on at theta_max / 1.1 and theta_min / 1.1."""


# ---------------------------------------------------------------------------- equations
def boundary_penalty(
    theta: torch.Tensor, theta_min: torch.Tensor, theta_max: torch.Tensor, scale: float = BOUNDARY_SCALE
) -> torch.Tensor:
    """AIDO eq. 3: mean(0.5 ReLU(theta - theta_max/1.1)^2 + 0.5 ReLU(theta_min/1.1 - theta)^2)."""
    upper = torch.relu(theta - theta_max / scale)
    lower = torch.relu(theta_min / scale - theta)
    return torch.mean(0.5 * upper**2 + 0.5 * lower**2)


def length_penalty(length: torch.Tensor, max_length: float) -> torch.Tensor:
    """AIDO eq. 7: 10 ReLU(d - d_max)^2 without the factor 10 (that is the penalty's weight)."""
    return torch.relu(length - max_length) ** 2


def expected_cost(lengths: torch.Tensor, costs: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """AIDO eq. 8: cost = sum_l d_l (c_l . P(phi_l)); ``lengths`` n_l, ``costs`` and ``probabilities`` n_l x n_cat."""
    return torch.sum(lengths * torch.sum(costs * probabilities, dim=-1))


def cost_penalty(cost: torch.Tensor, max_cost: float) -> torch.Tensor:
    """AIDO eq. 9: ReLU(cost / cost_max - 1)^2."""
    return torch.relu(cost / max_cost - 1.0) ** 2


def optimization_objective(surrogate_loss: torch.Tensor, penalties: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
    """AIDO eq. 2: L_opt = L' + sum_i w_i L_i + L_boundaries (the weighted penalties already summed)."""
    return surrogate_loss + penalties + boundary


def weighted_sum(penalties: Sequence[WeightedPenalty], theta: torch.Tensor) -> torch.Tensor:
    """Sum of ``weight * penalty(theta)`` over the ``(penalty, weight)`` pairs (0 for an empty list)."""
    total = theta.new_zeros(())
    for penalty, weight in penalties:
        total = total + float(weight) * penalty(theta)
    return total


# ---------------------------------------------------------------------------- bound to a design space
def _continuous_index(space: DesignSpace, name: str, field: str) -> int:
    names = [p.name for p in space.continuous]
    if name not in names:
        raise ConfigError(field, f"{name!r} is not a continuous parameter; known: {', '.join(names)}")
    return names.index(name)


def boundary_penalty_for(space: DesignSpace) -> Penalty:
    """Eq. 3 over the optimizable continuous parameters of ``space`` (bounds from the parameters)."""
    continuous = space.continuous
    index = [i for i, p in enumerate(continuous) if p.optimizable]
    low = torch.tensor([continuous[i].bounds[0] for i in index], dtype=torch.float64)
    high = torch.tensor([continuous[i].bounds[1] for i in index], dtype=torch.float64)

    def penalty(theta: torch.Tensor) -> torch.Tensor:
        if not index:
            return theta.new_zeros(())
        values = theta[index]
        return boundary_penalty(values, low.to(values), high.to(values))

    return penalty


def total_length_for(space: DesignSpace, parameters: Sequence[str] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """d(theta): the sum of the named continuous parameters (default: all of them), e.g. the detector depth."""
    names = list(parameters) if parameters is not None else [p.name for p in space.continuous]
    index = [_continuous_index(space, n, "penalties.length.parameters") for n in names]

    def length(theta: torch.Tensor) -> torch.Tensor:
        return theta[index].sum()

    return length


def length_penalty_for(space: DesignSpace, max_length: float, parameters: Sequence[str] | None = None) -> Penalty:
    """Eq. 7 on the sum of ``parameters`` (default: every continuous parameter) against ``max_length``."""
    length = total_length_for(space, parameters)
    return lambda theta: length_penalty(length(theta), max_length)


def default_cost_lengths(space: DesignSpace) -> dict[str, str]:
    """Pair each discrete parameter that has costs with its length: ``<x>_material`` -> ``<x>_thickness``."""
    pairs: dict[str, str] = {}
    names = {p.name for p in space.continuous}
    for p in space.discrete:
        if p.cost_per_unit is None:
            continue
        stem = p.name.removesuffix("_material")
        candidate = f"{stem}_thickness"
        if p.name == stem or candidate not in names:
            raise ConfigError(
                "penalties.cost.lengths",
                f"cannot tell which length multiplies the cost of {p.name!r}; name it <layer>_material with a "
                f"<layer>_thickness parameter, or give penalties.cost.lengths: {{{p.name}: <continuous parameter>}}",
            )
        pairs[p.name] = candidate
    return pairs


def expected_cost_for(space: DesignSpace, lengths: Mapping[str, str] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """cost(theta) of eq. 8: each discrete parameter with ``cost_per_unit`` times its paired length.

    ``lengths`` maps discrete parameter -> continuous parameter (default
    :func:`default_cost_lengths`). A design tensor carries the probabilities, so a
    fractional choice costs the probability-weighted price.
    """
    pairs = dict(lengths) if lengths is not None else default_cost_lengths(space)
    slices = space.encoding_slices()
    rows: list[tuple[int, slice, torch.Tensor]] = []
    for material, thickness in pairs.items():
        try:
            parameter = space[material]
        except KeyError:
            raise ConfigError("penalties.cost.lengths", f"{material!r} is not a parameter of the design") from None
        if not isinstance(parameter, DiscreteParameter) or parameter.cost_per_unit is None:
            raise ConfigError("penalties.cost.lengths", f"{material!r} must be a discrete parameter with cost_per_unit")
        rows.append(
            (
                _continuous_index(space, thickness, "penalties.cost.lengths"),
                slices[material],
                torch.tensor(parameter.cost_per_unit, dtype=torch.float64),
            )
        )
    if not rows:
        raise ConfigError("penalties.cost", "no discrete parameter of the design has cost_per_unit")
    width = max(len(c) for _, _, c in rows)
    costs = torch.zeros(len(rows), width, dtype=torch.float64)
    for r, (_, _, c) in enumerate(rows):
        costs[r, : len(c)] = c

    def cost(theta: torch.Tensor) -> torch.Tensor:
        lengths_t = torch.stack([theta[i] for i, _, _ in rows])
        probs = torch.stack(
            [torch.nn.functional.pad(theta[s], (0, width - (s.stop - s.start))) for _, s, _ in rows]
        )
        return expected_cost(lengths_t, costs.to(theta), probs)

    return cost


def cost_penalty_for(space: DesignSpace, max_cost: float, lengths: Mapping[str, str] | None = None) -> Penalty:
    """Eq. 9 on the eq. 8 cost of ``space`` against ``max_cost``."""
    cost = expected_cost_for(space, lengths)
    return lambda theta: cost_penalty(cost(theta), max_cost)


def _built(theta: torch.Tensor, space: DesignSpace) -> torch.Tensor:
    """The design tensor with every discrete parameter's probabilities replaced by the one-hot of its most
    probable category (the detector that would be built); the continuous entries keep their gradient."""
    parts = []
    for name, s in sorted(space.encoding_slices().items(), key=lambda item: item[1].start):
        block = theta[s]
        if isinstance(space[name], DiscreteParameter):
            block = torch.nn.functional.one_hot(torch.argmax(block.detach()), s.stop - s.start).to(theta)
        parts.append(block)
    return torch.cat(parts)


def built_cost_for(space: DesignSpace, lengths: Mapping[str, str] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The eq. 8 cost of the design that would be built: each material its most probable category."""
    cost = expected_cost_for(space, lengths)
    return lambda theta: cost(_built(theta, space))


def linear_constraint_for(space: DesignSpace, coefficients: Mapping[str, float], field: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """g(theta) = sum_i c_i theta_i over named continuous parameters (a linear constraint's left-hand side)."""
    index = [_continuous_index(space, name, field) for name in coefficients]
    c = torch.tensor([float(v) for v in coefficients.values()], dtype=torch.float64)
    return lambda theta: torch.sum(c.to(theta) * theta[index])


def design_tensors(space: DesignSpace, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """The design tensor as parameter name -> tensor: a 0-d value (continuous) or the probabilities (discrete)."""
    return {
        name: (theta[s] if isinstance(space[name], DiscreteParameter) else theta[s][0])
        for name, s in space.encoding_slices().items()
    }
