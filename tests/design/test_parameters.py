"""ContinuousParameter and DiscreteParameter: defaults, validation errors that name the parameter, logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from detopt.design import ContinuousParameter, DiscreteParameter
from detopt.errors import ConfigError


def thickness(**overrides: object) -> ContinuousParameter:
    data: dict[str, object] = {"name": "absorber_0_thickness", "value": 40.0, "bounds": (0.01, 200.0), "sigma": 2.5}
    data.update(overrides)
    return ContinuousParameter(**data)  # type: ignore[arg-type]


def material(**overrides: object) -> DiscreteParameter:
    data: dict[str, object] = {"name": "absorber_0_material", "categories": ["Pb", "Fe"]}
    data.update(overrides)
    return DiscreteParameter(**data)  # type: ignore[arg-type]


# ---------------------------------------------------------------- continuous


def test_continuous_fields_and_defaults() -> None:
    p = thickness(unit="cm")
    assert (p.type, p.name, p.value, p.bounds, p.sigma, p.unit, p.optimizable) == (
        "continuous",
        "absorber_0_thickness",
        40.0,
        (0.01, 200.0),
        2.5,
        "cm",
        True,
    )
    assert thickness().unit == ""


@pytest.mark.parametrize("value", [0.01, 200.0])
def test_value_on_a_bound_is_allowed(value: float) -> None:
    assert thickness(value=value).value == value


@pytest.mark.parametrize("value", [0.0, 200.5, -3.0])
def test_value_outside_bounds_names_parameter_and_range(value: float) -> None:
    with pytest.raises(ConfigError) as info:
        thickness(value=value, unit="cm")
    assert info.value.field == "parameters[absorber_0_thickness].value"
    assert "absorber_0_thickness" in str(info.value)
    assert "[0.01, 200.0] cm" in info.value.message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"value": math.nan}, "value"),
        ({"value": math.inf}, "value"),
        ({"value": -math.inf}, "value"),
        ({"bounds": (math.nan, 1.0)}, "bounds"),
        ({"bounds": (0.0, math.inf)}, "bounds"),
        ({"sigma": math.nan}, "sigma"),
        ({"sigma": math.inf}, "sigma"),
    ],
)
def test_nan_and_inf_are_rejected(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        thickness(**overrides)
    assert info.value.field == f"parameters[absorber_0_thickness].{field}"
    assert "finite" in info.value.message


@pytest.mark.parametrize("bounds", [(5.0, 5.0), (200.0, 0.01)])
def test_bounds_must_be_ordered(bounds: tuple[float, float]) -> None:
    with pytest.raises(ConfigError, match=r"absorber_0_thickness\].bounds: bounds must satisfy min < max"):
        thickness(bounds=bounds)


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_sigma_must_be_positive(sigma: float) -> None:
    with pytest.raises(ConfigError, match=r"parameters\[absorber_0_thickness\].sigma: .*> 0"):
        thickness(sigma=sigma)


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        thickness(sigmma=2.0)
    assert info.value.field == "parameters[absorber_0_thickness].sigmma"
    assert "unknown key 'sigmma'" in info.value.message
    assert "sigma" in info.value.message  # the allowed keys are listed


def test_non_number_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"parameters\[absorber_0_thickness\].value: .*valid number.*'thick'"):
        thickness(value="thick")


@pytest.mark.parametrize("name", ["", "a b", "x=y", "3layers"])
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid parameter name"):
        thickness(name=name)


def test_parameters_are_immutable() -> None:
    p = thickness()
    with pytest.raises(ValidationError):
        p.value = 3.0  # type: ignore[misc]
    assert p.value == 40.0


def test_continuous_dict_round_trip() -> None:
    p = thickness(unit="cm", optimizable=False)
    d = p.to_dict()
    assert d["bounds"] == [0.01, 200.0]
    assert ContinuousParameter.from_dict(d) == p


# ------------------------------------------------------------------ discrete


def test_discrete_default_probabilities_are_uniform() -> None:
    p = DiscreteParameter(name="m", categories=["a", "b", "c", "d"])
    assert p.probabilities == (0.25, 0.25, 0.25, 0.25)
    assert p.cost_per_unit is None
    assert p.optimizable is True


def test_tiny_float_error_is_renormalized() -> None:
    p = material(probabilities=[0.7 + 4e-7, 0.3])
    assert math.fsum(p.probabilities) == pytest.approx(1.0, abs=1e-15)
    assert p.probabilities[0] == pytest.approx(0.7, abs=1e-6)


@pytest.mark.parametrize("probabilities", [[0.5, 0.6], [0.2, 0.2], [0.5, 0.5 - 2e-6]])
def test_probabilities_must_sum_to_one(probabilities: list[float]) -> None:
    with pytest.raises(ConfigError) as info:
        material(probabilities=probabilities)
    assert info.value.field == "parameters[absorber_0_material].probabilities"
    assert "sum to 1" in info.value.message


@pytest.mark.parametrize(
    ("probabilities", "text"),
    [([1.0], "one probability per category (2: Pb, Fe), got 1"), ([1.5, -0.5], "in [0, 1]"), ([math.nan, 1.0], "in [0, 1]")],
)
def test_bad_probabilities(probabilities: list[float], text: str) -> None:
    with pytest.raises(ConfigError, match=r"absorber_0_material") as info:
        material(probabilities=probabilities)
    assert text in info.value.message


def test_empty_categories_are_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        material(categories=[])
    assert info.value.field == "parameters[absorber_0_material].categories"
    assert "at least one category" in info.value.message


def test_duplicate_categories_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"absorber_0_material\].categories: .*repeated: Pb"):
        material(categories=["Pb", "Fe", "Pb"])


@pytest.mark.parametrize(("costs", "text"), [([25.0], "one cost per category"), ([25.0, -1.0], ">= 0"), ([math.inf, 1.0], ">= 0")])
def test_bad_costs(costs: list[float], text: str) -> None:
    with pytest.raises(ConfigError, match=r"parameters\[absorber_0_material\].cost_per_unit") as info:
        material(cost_per_unit=costs)
    assert text in info.value.message


def test_logits_give_back_probabilities_under_softmax() -> None:
    p = DiscreteParameter(name="m", categories=["a", "b", "c"], probabilities=[0.2, 0.3, 0.5])
    z = p.logits
    softmax = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(softmax, [0.2, 0.3, 0.5], rtol=1e-12)
    assert p.most_probable == "c"


def test_logits_of_zero_probability_are_finite() -> None:
    p = material(probabilities=[1.0, 0.0])
    assert np.all(np.isfinite(p.logits))
    assert p.logits[1] == pytest.approx(math.log(1e-12))
    assert p.most_probable == "Pb"


def test_most_probable_takes_first_on_ties_and_index() -> None:
    p = material()
    assert p.most_probable == "Pb"
    assert p.index("Fe") == 1
    with pytest.raises(ConfigError, match=r"unknown category 'W'; allowed: Pb, Fe"):
        p.index("W")


def test_discrete_dict_round_trip() -> None:
    p = material(probabilities=[0.25, 0.75], cost_per_unit=[25.0, 4.16], optimizable=False)
    assert DiscreteParameter.from_dict(p.to_dict()) == p
