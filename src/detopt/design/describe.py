"""A design as a physicist reads it: the chosen category with its probability, each value with its unit."""

from __future__ import annotations

from detopt.design.parameters import DiscreteParameter
from detopt.design.space import DesignSpace

__all__ = ["design_lines", "parameter_text"]


def parameter_text(space: DesignSpace, name: str) -> str:
    """``Fe (P=0.99)`` for a discrete parameter (its most probable category), ``20.1 cm`` for a continuous one."""
    p = space[name]
    if isinstance(p, DiscreteParameter):
        probabilities = list(p.probabilities)
        k = max(range(len(probabilities)), key=probabilities.__getitem__)
        return f"{p.categories[k]} (P={probabilities[k]:.2f})"
    return f"{p.value:.3g} {p.unit}".strip()


def design_lines(space: DesignSpace) -> list[str]:
    """One entry per calorimeter layer (``absorber_0: Fe (P=0.99), 20.1 cm``, from ``<layer>_thickness`` and
    ``<layer>_material``), then ``name=text`` for every other parameter."""
    lines, used = [], set()
    for p in space.continuous:
        stem = p.name.removesuffix("_thickness")
        if stem != p.name and f"{stem}_material" in space:
            lines.append(f"{stem}: {parameter_text(space, stem + '_material')}, {parameter_text(space, p.name)}")
            used |= {p.name, f"{stem}_material"}
    lines += [f"{name}={parameter_text(space, name)}" for name in space.names if name not in used]
    return lines
