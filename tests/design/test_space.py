"""DesignSpace: encoding layout, sampling statistics, updates, file round trips and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.errors import ConfigError

N_STAT = 20_000


@pytest.fixture
def space() -> DesignSpace:
    """Two free thicknesses, one fixed, a free 3-way material and a fixed 2-way one."""
    return DesignSpace(
        parameters=[
            ContinuousParameter(name="a_thickness", value=10.0, bounds=(0.0, 100.0), sigma=1.0, unit="cm"),
            DiscreteParameter(name="a_material", categories=["Pb", "Fe", "W"], probabilities=[0.2, 0.3, 0.5]),
            ContinuousParameter(name="gap", value=1.5, bounds=(1.0, 2.0), sigma=0.1, optimizable=False),
            ContinuousParameter(name="b_thickness", value=50.0, bounds=(-100.0, 200.0), sigma=3.0),
            DiscreteParameter(
                name="b_material", categories=["PbWO4", "polystyrene"], probabilities=[0.3, 0.7], optimizable=False
            ),
        ]
    )


# ---------------------------------------------------------------- access


def test_access(space: DesignSpace) -> None:
    assert space.names == ("a_thickness", "a_material", "gap", "b_thickness", "b_material")
    assert [p.name for p in space.continuous] == ["a_thickness", "gap", "b_thickness"]
    assert [p.name for p in space.discrete] == ["a_material", "b_material"]
    assert [p.name for p in space.optimizable_continuous] == ["a_thickness", "b_thickness"]
    assert space["gap"].value == 1.5  # type: ignore[union-attr]
    assert "gap" in space and "nope" not in space
    with pytest.raises(KeyError, match="nope"):
        space["nope"]


def test_current_design_and_default_covariance(space: DesignSpace) -> None:
    assert space.current_design() == {
        "a_thickness": 10.0,
        "a_material": "W",
        "gap": 1.5,
        "b_thickness": 50.0,
        "b_material": "polystyrene",
    }
    np.testing.assert_array_equal(space.covariance(), np.diag([1.0, 9.0]))


# ---------------------------------------------------------------- encoding


def test_encoding_layout(space: DesignSpace) -> None:
    assert space.encoding_names == (
        "a_thickness",
        "gap",
        "b_thickness",
        "a_material=Pb",
        "a_material=Fe",
        "a_material=W",
        "b_material=PbWO4",
        "b_material=polystyrene",
    )
    assert space.encoding_size == 8
    assert space.encoding_slices() == {
        "a_thickness": slice(0, 1),
        "a_material": slice(3, 6),
        "gap": slice(1, 2),
        "b_thickness": slice(2, 3),
        "b_material": slice(6, 8),
    }


def test_encode_concrete_designs_one_hot(space: DesignSpace) -> None:
    designs = [
        {"a_thickness": 12.5, "a_material": "Fe", "gap": 1.5, "b_thickness": -3.0, "b_material": "PbWO4"},
        {"b_material": "polystyrene", "a_material": "W", "gap": 1.25, "b_thickness": 0.0, "a_thickness": 7},
    ]
    encoded = space.encode(designs)
    np.testing.assert_array_equal(
        encoded,
        [
            [12.5, 1.5, -3.0, 0, 1, 0, 1, 0],
            [7.0, 1.25, 0.0, 0, 0, 1, 0, 1],
        ],
    )
    assert encoded.dtype == np.float64
    assert space.decode_vector(encoded[0]) == designs[0]
    assert space.encode([]).shape == (0, 8)


def test_current_encoding_uses_probabilities(space: DesignSpace) -> None:
    np.testing.assert_allclose(space.current_encoding(), [10.0, 1.5, 50.0, 0.2, 0.3, 0.5, 0.3, 0.7], rtol=1e-15)
    assert space.decode_vector(space.current_encoding()) == space.current_design()


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"a_material": "Cu"}, "designs[0].a_material", "Pb, Fe, W"),
        ({"b_thickness": math.nan}, "designs[0].b_thickness", "finite"),
        ({"b_thickness": "thick"}, "designs[0].b_thickness", "finite"),
        ({"extra": 1.0}, "designs[0]", "unknown parameters: extra"),
    ],
)
def test_encode_rejects_bad_designs(space: DesignSpace, change: dict[str, object], field: str, text: str) -> None:
    design = {**space.current_design(), **change}
    with pytest.raises(ConfigError) as info:
        space.encode([design])
    assert info.value.field == field
    assert text in info.value.message


def test_encode_rejects_missing_parameter_and_bare_mapping(space: DesignSpace) -> None:
    design = space.current_design()
    del design["gap"]
    with pytest.raises(ConfigError, match="missing parameters: gap"):
        space.encode([design])
    with pytest.raises(ConfigError, match="sequence of designs"):
        space.encode(space.current_design())  # type: ignore[arg-type]


# ---------------------------------------------------------------- sampling


def test_sample_statistics_match_theta_and_covariance(space: DesignSpace) -> None:
    rho = 0.6
    k = np.array([[1.0, rho * 1.0 * 3.0], [rho * 1.0 * 3.0, 9.0]])
    designs = space.sample(N_STAT + 1, np.random.default_rng(1), covariance=k)
    x = np.array([[d["a_thickness"], d["b_thickness"]] for d in designs[1:]])
    # mean: within 4 standard errors of theta
    standard_error = np.sqrt(np.diag(k) / N_STAT)
    assert np.all(np.abs(x.mean(axis=0) - [10.0, 50.0]) < 4 * standard_error)
    cov = np.cov(x, rowvar=False)
    # variances: standard error sqrt(2/n) ~ 1%; allow 5%
    np.testing.assert_allclose(np.diag(cov), np.diag(k), rtol=0.05)
    corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert abs(corr - rho) < 0.03  # standard error (1 - rho^2)/sqrt(n) ~ 0.005


def test_default_covariance_is_diagonal_sigma_squared(space: DesignSpace) -> None:
    designs = space.sample(N_STAT, np.random.default_rng(2), include_current=False)
    x = np.array([[d["a_thickness"], d["b_thickness"]] for d in designs])
    np.testing.assert_allclose(x.std(axis=0, ddof=1), [1.0, 3.0], rtol=0.03)
    assert abs(np.corrcoef(x, rowvar=False)[0, 1]) < 0.03


def test_discrete_frequencies_match_probabilities(space: DesignSpace) -> None:
    designs = space.sample(N_STAT, np.random.default_rng(3), include_current=False)
    picks = [d["a_material"] for d in designs]
    for category, p in zip(("Pb", "Fe", "W"), (0.2, 0.3, 0.5), strict=True):
        frequency = picks.count(category) / N_STAT
        assert abs(frequency - p) < 3 * math.sqrt(p * (1 - p) / N_STAT), category


def test_fixed_parameters_keep_their_value(space: DesignSpace) -> None:
    designs = space.sample(500, np.random.default_rng(4))
    assert {d["gap"] for d in designs} == {1.5}
    assert {d["b_material"] for d in designs} == {"polystyrene"}
    assert len({d["a_thickness"] for d in designs}) == 500


def test_draws_respect_bounds_as_a_truncated_normal() -> None:
    """Value on the lower bound: redrawing (not clipping) gives a half-normal, mean = low + sigma sqrt(2/pi)."""
    space = DesignSpace(
        parameters=[
            ContinuousParameter(name="t0", value=0.01, bounds=(0.01, 200.0), sigma=2.5),
            ContinuousParameter(name="t1", value=199.0, bounds=(0.01, 200.0), sigma=2.5),
        ]
    )
    designs = space.sample(N_STAT, np.random.default_rng(5), include_current=False)
    t0 = np.array([d["t0"] for d in designs])
    t1 = np.array([d["t1"] for d in designs])
    assert t0.min() >= 0.01 and t1.max() <= 200.0
    assert np.all(t0 > 0.01)  # no mass piled up on the bound, as clipping would give
    half_normal_sd = 2.5 * math.sqrt(1 - 2 / math.pi)
    assert abs(t0.mean() - (0.01 + 2.5 * math.sqrt(2 / math.pi))) < 4 * half_normal_sd / math.sqrt(N_STAT)


def test_current_design_comes_first(space: DesignSpace) -> None:
    designs = space.sample(20, np.random.default_rng(6))
    assert len(designs) == 20
    assert designs[0] == space.current_design()
    assert designs[1] != space.current_design()
    assert space.sample(1, np.random.default_rng(6)) == [space.current_design()]
    without = space.sample(20, np.random.default_rng(6), include_current=False)
    assert len(without) == 20 and without[0] != space.current_design()


def test_seeds_reproduce_and_differ(space: DesignSpace) -> None:
    first = space.sample(50, np.random.default_rng(123))
    again = space.sample(50, np.random.default_rng(123))
    other = space.sample(50, np.random.default_rng(124))
    assert first == again
    assert first[1:] != other[1:]
    assert all(a["a_thickness"] != b["a_thickness"] for a, b in zip(first[1:], other[1:], strict=True))


def test_designs_are_plain_python_values(space: DesignSpace) -> None:
    design = space.sample(2, np.random.default_rng(0))[1]
    assert type(design["a_thickness"]) is float and type(design["a_material"]) is str
    json.dumps(design)  # serializable as is


@pytest.mark.parametrize(
    ("covariance", "text"),
    [
        (np.eye(3), "shape (2, 2) (rows and columns: a_thickness, b_thickness), got shape (3, 3)"),
        (np.ones(2), "shape (2, 2)"),
        (np.array([[1.0, 0.5], [0.4, 1.0]]), "symmetric; entry [a_thickness, b_thickness]"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive definite (rows and columns: a_thickness, b_thickness)"),
        (np.array([[1.0, math.nan], [math.nan, 1.0]]), "finite"),
    ],
)
def test_bad_covariance(space: DesignSpace, covariance: np.ndarray, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        space.sample(5, np.random.default_rng(0), covariance=covariance)
    assert info.value.field == "covariance"
    assert text in info.value.message


def test_hopeless_bounds_give_a_clear_error() -> None:
    space = DesignSpace(
        parameters=[ContinuousParameter(name=f"t{i}", value=0.5, bounds=(0.0, 1.0), sigma=1e6) for i in range(2)]
    )
    with pytest.raises(ConfigError, match=r"covariance: could draw only 0 of 10 designs.*most often out of bounds: t"):
        space.sample(10, np.random.default_rng(0), include_current=False, max_rounds=2)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_number_of_designs(space: DesignSpace, n: object) -> None:
    with pytest.raises(ConfigError, match="n: number of designs must be an integer >= 1"):
        space.sample(n, np.random.default_rng(0))  # type: ignore[arg-type]


def test_rng_must_be_a_generator(space: DesignSpace) -> None:
    with pytest.raises(ConfigError, match="rng: must be a numpy.random.Generator"):
        space.sample(3, 42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- updates


def test_with_values_returns_validated_copy(space: DesignSpace) -> None:
    new = space.with_values({"a_thickness": 12.0}, {"a_material": np.array([0.1, 0.1, 0.8])})
    assert new["a_thickness"].value == 12.0  # type: ignore[union-attr]
    assert new["a_material"].probabilities == pytest.approx((0.1, 0.1, 0.8))  # type: ignore[union-attr]
    assert space["a_thickness"].value == 10.0  # type: ignore[union-attr]
    assert new.names == space.names
    assert new.with_values() == new


def test_with_values_rejects_out_of_bounds_or_clips(space: DesignSpace) -> None:
    with pytest.raises(ConfigError) as info:
        space.with_values({"a_thickness": 150.0})
    assert info.value.field == "parameters[a_thickness].value"
    assert "[0.0, 100.0] cm" in info.value.message
    assert space.with_values({"a_thickness": 150.0}, clip=True)["a_thickness"].value == 100.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("values", "probabilities", "field"),
    [
        ({"nope": 1.0}, None, "values[nope]"),
        ({"a_material": 1.0}, None, "values[a_material]"),
        (None, {"a_thickness": [1.0]}, "probabilities[a_thickness]"),
        (None, {"a_material": [0.5, 0.5, 0.5]}, "parameters[a_material].probabilities"),
        ({"b_thickness": math.inf}, None, "parameters[b_thickness].value"),
    ],
)
def test_with_values_errors(
    space: DesignSpace, values: dict[str, float] | None, probabilities: dict[str, list[float]] | None, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        space.with_values(values, probabilities)
    assert info.value.field == field


# ---------------------------------------------------------------- validation


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        DesignSpace(
            parameters=[
                ContinuousParameter(name="t", value=1.0, bounds=(0.0, 2.0), sigma=1.0),
                DiscreteParameter(name="t", categories=["Pb"]),
            ]
        )
    assert info.value.field == "parameters[t]"
    assert "duplicate parameter name 't'" in info.value.message


def test_empty_space_is_rejected() -> None:
    with pytest.raises(ConfigError, match="at least one parameter"):
        DesignSpace(parameters=[])


@pytest.mark.parametrize(
    ("entry", "field", "text"),
    [
        ({"name": "t", "value": 5.0, "bounds": [0, 1], "sigma": 1}, "parameters[t].value", "[0.0, 1.0]"),
        ({"name": "t", "value": math.nan, "bounds": [0, 1], "sigma": 1}, "parameters[t].value", "finite"),
        ({"name": "m", "categories": ["a", "b"], "probabilities": [0.6, 0.6]}, "parameters[m].probabilities", "sum"),
        ({"name": "m", "categories": []}, "parameters[m].categories", "at least one"),
        ({"name": "t", "value": 0.5, "bounds": [0, 1], "sigma": 1, "colour": 1}, "parameters[t].colour", "unknown key"),
        ({"type": "integer", "name": "t"}, "parameters[t]", "unknown parameter type 'integer'"),
        ({"name": "t", "sigma": 1.0}, "parameters[t]", "cannot tell the parameter type"),
    ],
)
def test_from_dict_errors_name_the_parameter(entry: dict[str, object], field: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        DesignSpace.from_dict({"parameters": [entry]})
    assert info.value.field == field
    assert text in info.value.message


def test_type_is_inferred_when_evident() -> None:
    space = DesignSpace.from_dict(
        {"parameters": [{"name": "t", "value": 1, "bounds": [0, 2], "sigma": 0.5}, {"name": "m", "categories": ["x"]}]}
    )
    assert [p.type for p in space.parameters] == ["continuous", "discrete"]


# ---------------------------------------------------------------- round trips


def test_dict_json_and_yaml_round_trip(space: DesignSpace) -> None:
    assert DesignSpace.from_dict(space.to_dict()) == space
    assert DesignSpace.from_json(space.to_json()) == space
    assert DesignSpace.from_yaml(space.to_yaml()) == space
    assert space.to_dict()["version"] == 1
    awkward = space.with_values({"a_thickness": 0.1 + 0.2, "b_thickness": 1e-17})
    assert DesignSpace.from_yaml(awkward.to_yaml()) == awkward  # floats survive exactly


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_and_load(space: DesignSpace, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "sub" / f"design{suffix}"
    space.save(path)
    assert DesignSpace.load(path) == space
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_load_ignores_detector_but_not_other_keys(space: DesignSpace, tmp_path: Path) -> None:
    data = {**space.to_dict(), "detector": {"transverse_size_cm": 50.0}}
    path = tmp_path / "design.json"
    path.write_text(json.dumps(data))
    assert DesignSpace.load(path) == space
    data["simulation"] = {}
    data["beam"] = {}
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        DesignSpace.load(path)
    assert "'simulation', 'beam'" in info.value.message and str(path) in info.value.message
    with pytest.raises(ConfigError, match="unknown top-level key 'detector'"):
        DesignSpace.from_dict({**space.to_dict(), "detector": {}})


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_text("parameters:\n  - {name: t, value: 5, bounds: [0, 1], sigma: 1}\n")
    with pytest.raises(ConfigError) as info:
        DesignSpace.load(path)
    assert info.value.field == "parameters[t].value"
    assert str(path) in info.value.message


@pytest.mark.parametrize(("suffix", "text"), [(".yaml", "parameters: [unclosed\n"), (".json", '{"parameters": [}')])
def test_malformed_file_names_the_file(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        DesignSpace.load(path)
    assert info.value.field == str(path)
    assert "malformed" in info.value.message and "line" in info.value.message


def test_file_errors(space: DesignSpace, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="design file not found"):
        DesignSpace.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown design file suffix '.txt'"):
        space.save(tmp_path / "design.txt")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping with a 'parameters' list, got list"):
        DesignSpace.load(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("detector: {}\n")
    with pytest.raises(ConfigError, match="parameters: required key is missing"):
        DesignSpace.load(tmp_path / "empty.yaml")


def test_a_parameter_with_a_non_text_key_is_a_clear_error() -> None:
    """YAML `- &anchor: x` parses to a null key; it must not reach pydantic's keyword arguments."""
    with pytest.raises(ConfigError, match="parameter keys must be names.*None"):
        DesignSpace.from_mapping({"parameters": [{None: "absorber", "type": "continuous", "value": 1.0, "bounds": [0, 2]}]})
