"""Parameters of a detector design: continuous (a thickness) and discrete (a material choice).

A continuous parameter carries its current value, hard bounds and the standard
deviation used to sample designs around it (AIDO paper, section 4.1). A
discrete parameter carries a probability for each category; the optimizer moves
the logits z with P = softmax(z) (AIDO paper, section 5).

Both are immutable pydantic models; build an updated design with
:meth:`detopt.design.DesignSpace.with_values`. Invalid input raises
:class:`detopt.errors.ConfigError` naming the field, e.g.
``parameters[absorber_0_thickness].value``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from detopt.design._errors import FieldValueError, config_error_from_validation
from detopt.errors import ConfigError

__all__ = [
    "NAME_PATTERN",
    "PROBABILITY_FLOOR",
    "PROBABILITY_SUM_TOLERANCE",
    "ContinuousParameter",
    "DiscreteParameter",
]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
"""Allowed parameter names: identifier-like, so they work as YAML keys, table columns and in ``name=category``."""

PROBABILITY_SUM_TOLERANCE = 1e-6
"""Probabilities of a discrete parameter must sum to 1 within this; the tiny remainder is renormalized away."""

PROBABILITY_FLOOR = 1e-12
"""Probabilities are clamped to at least this before taking the log (keeps logits finite)."""

_NAME_RE = re.compile(NAME_PATTERN)


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid parameter name {name!r}; use letters, digits, '_', '.', '-', starting with a letter or '_'"
        )
    return name


def _parameter_root(data: Mapping[str, Any]) -> str:
    name = data.get("name")
    return f"parameters[{name}]" if isinstance(name, str) and name else "parameters[?]"


class _Parameter(BaseModel):
    """Shared configuration: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error_from_validation(
                exc, data, root=_parameter_root(data), root_model=type(self), tag_models={}
            ) from None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return _check_name(name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Validate a plain mapping (e.g. parsed JSON) into a parameter; raises ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError("parameters[?]", f"a parameter must be a mapping of keys to values, got {type(data).__name__}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (lists instead of tuples); :meth:`from_dict` reads it back."""
        return self.model_dump(mode="json")


class ContinuousParameter(_Parameter):
    """A real-valued design parameter (e.g. a layer thickness).

    Attributes:
        value: current value theta, inside ``bounds`` (inclusive).
        bounds: (min, max), finite, min < max; sampled designs never leave them.
        sigma: standard deviation used to sample designs around ``value`` (same unit), > 0.
        unit: unit of value, bounds and sigma, for display (e.g. ``"cm"``).
        optimizable: if False the value stays fixed in sampling and optimization.
    """

    type: Literal["continuous"] = "continuous"
    value: float
    bounds: tuple[float, float]
    sigma: float
    unit: str = ""
    optimizable: bool = True

    @field_validator("value")
    @classmethod
    def _finite_value(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        return value

    @field_validator("sigma")
    @classmethod
    def _positive_sigma(cls, sigma: float) -> float:
        if not (math.isfinite(sigma) and sigma > 0.0):
            raise ValueError(f"sampling standard deviation must be finite and > 0, got {sigma}")
        return sigma

    @field_validator("bounds")
    @classmethod
    def _ordered_bounds(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        low, high = bounds
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"bounds must be finite numbers (min, max), got ({low}, {high})")
        if not low < high:
            raise ValueError(f"bounds must satisfy min < max, got ({low}, {high})")
        return bounds

    @model_validator(mode="after")
    def _value_within_bounds(self) -> ContinuousParameter:
        low, high = self.bounds
        if not low <= self.value <= high:
            unit = f" {self.unit}" if self.unit else ""
            raise FieldValueError(
                "value", f"{self.value}{unit} is outside the bounds; allowed range is [{low}, {high}]{unit}"
            )
        return self


class DiscreteParameter(_Parameter):
    """A categorical design parameter (e.g. the material of a layer).

    Attributes:
        categories: the choices, non-empty and unique.
        probabilities: P(category), one per category, each in [0, 1], summing to 1
            (within 1e-6; renormalized). Default: uniform.
        cost_per_unit: optional cost of each category per unit of an associated
            length (e.g. EUR/cm of layer thickness, AIDO eq. 8), each >= 0.
        optimizable: if False the most probable category is always used.
    """

    type: Literal["discrete"] = "discrete"
    categories: tuple[str, ...]
    probabilities: tuple[float, ...]
    cost_per_unit: tuple[float, ...] | None = None
    optimizable: bool = True

    @model_validator(mode="before")
    @classmethod
    def _default_uniform(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("probabilities") is None:
            categories = data.get("categories")
            if isinstance(categories, Sequence) and not isinstance(categories, str) and len(categories) > 0:
                data = {**data, "probabilities": [1.0 / len(categories)] * len(categories)}
            else:
                data = {**data, "probabilities": ()}
        return data

    @field_validator("categories")
    @classmethod
    def _unique_categories(cls, categories: tuple[str, ...]) -> tuple[str, ...]:
        if len(categories) == 0:
            raise ValueError("must list at least one category")
        if any(not c for c in categories):
            raise ValueError("category names must be non-empty strings")
        duplicates = sorted({c for c in categories if categories.count(c) > 1})
        if duplicates:
            raise ValueError(f"categories must be unique; repeated: {', '.join(duplicates)}")
        return categories

    @field_validator("probabilities")
    @classmethod
    def _normalized(cls, probabilities: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
        categories = info.data.get("categories")
        if categories is None:  # categories already failed; that error is reported
            return probabilities
        if len(probabilities) != len(categories):
            raise ValueError(
                f"needs one probability per category ({len(categories)}: {', '.join(categories)}), "
                f"got {len(probabilities)}"
            )
        for p in probabilities:
            if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                raise ValueError(f"each probability must be in [0, 1], got {p}")
        total = math.fsum(probabilities)
        if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
            raise ValueError(
                f"probabilities must sum to 1 (within {PROBABILITY_SUM_TOLERANCE:g}), got sum {total:.9g}"
            )
        return tuple(p / total for p in probabilities)

    @field_validator("cost_per_unit")
    @classmethod
    def _nonnegative_costs(cls, costs: tuple[float, ...] | None, info: ValidationInfo) -> tuple[float, ...] | None:
        if costs is None:
            return None
        categories = info.data.get("categories")
        if categories is not None and len(costs) != len(categories):
            raise ValueError(
                f"needs one cost per category ({len(categories)}: {', '.join(categories)}), got {len(costs)}"
            )
        for c in costs:
            if not (math.isfinite(c) and c >= 0.0):
                raise ValueError(f"each cost must be finite and >= 0, got {c}")
        return costs

    @property
    def logits(self) -> np.ndarray:
        """z = log P (probabilities clamped to >= 1e-12), so that softmax(z) = P; shape (n_categories,)."""
        return np.log(np.clip(np.asarray(self.probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1.0))

    @property
    def most_probable(self) -> str:
        """The category with the highest probability (the first one on ties)."""
        return self.categories[int(np.argmax(self.probabilities))]

    def index(self, category: str) -> int:
        """Position of ``category`` in :attr:`categories`; ConfigError naming the allowed ones otherwise."""
        try:
            return self.categories.index(category)
        except ValueError:
            raise ConfigError(
                f"parameters[{self.name}]", f"unknown category {category!r}; allowed: {', '.join(self.categories)}"
            ) from None
