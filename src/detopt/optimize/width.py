"""Adaptive sampling width: grow while steps reach the trust-region boundary and pay off, shrink when they stop paying off.

The width w multiplies every parameter's sigma (the sampling covariance and with it the trust
region, AIDO eq. 4, scale with w^2). The rule follows the success and failure counters of
trust-region Bayesian optimization (Eriksson et al., TuRBO, NeurIPS 2019): a step is a success
when the fresh simulated objective of the new centre is lower than that of the centre it came
from (both simulated in the same iteration, judged by the same reconstruction). After
``success_tolerance`` consecutive successes of steps that hit the boundary, w doubles; after
``failure_tolerance`` consecutive failures, w halves; w stays within [minimum, maximum].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from detopt.errors import ConfigError

__all__ = ["WidthRule", "WidthState", "updated_width"]


@dataclass(frozen=True)
class WidthRule:
    """Bounds and counters of the adaptive width (run configuration: ``optimizer.width``)."""

    initial: float = 1.0
    minimum: float = 0.125
    maximum: float = 4.0
    expand: float = 2.0
    shrink: float = 0.5
    success_tolerance: int = 1
    failure_tolerance: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.initial <= self.maximum:
            raise ConfigError(
                "optimizer.width",
                f"needs 0 < minimum <= initial <= maximum, got {self.minimum}, {self.initial}, {self.maximum}",
            )
        if not self.expand > 1 or not 0 < self.shrink < 1:
            raise ConfigError("optimizer.width", f"needs expand > 1 and 0 < shrink < 1, got {self.expand}, {self.shrink}")
        if self.success_tolerance < 1 or self.failure_tolerance < 1:
            raise ConfigError("optimizer.width", "success_tolerance and failure_tolerance must be >= 1")


@dataclass(frozen=True)
class WidthState:
    """The width and its counters between iterations (saved with the covariance)."""

    width: float
    successes: int = 0
    failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def updated_width(state: WidthState, improved: bool, hit_boundary: bool, rule: WidthRule, ceiling: float | None = None) -> WidthState:
    """The width after one judged step: expand on repeated boundary-hitting successes, shrink on repeated failures."""
    top = rule.maximum if ceiling is None else max(rule.minimum, min(rule.maximum, ceiling))
    width, successes, failures = state.width, state.successes, state.failures
    if improved:
        failures = 0
        successes = successes + 1 if hit_boundary else 0
        if successes >= rule.success_tolerance:
            width, successes = width * rule.expand, 0
    else:
        successes = 0
        failures += 1
        if failures >= rule.failure_tolerance:
            width, failures = width * rule.shrink, 0
    return WidthState(min(max(width, rule.minimum), top), successes, failures)
