"""Design files (layout + design space) and the AIDO starting calorimeter built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detopt.detector import CalorimeterLayout
from detopt.errors import ConfigError
from detopt.examples import (
    aido_calorimeter,
    aido_design_space,
    aido_layout,
    load_design_file,
    parse_design_mapping,
    save_design_file,
)
from detopt.examples.aido import AIDO_LAYER_NAMES

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aido_start.yaml"

#: PDG radiation lengths in cm (AtomicNuclearProperties): Pb 0.5612, PbWO4 0.8903.
X0_PB_CM, X0_PBWO4_CM = 0.5612, 0.8903


def test_aido_layout_is_the_paper_geometry() -> None:
    """Section 6: six layers alternating absorber (passive) and scintillator (active), 50 cm x 50 cm."""
    layout = aido_layout()
    assert [spec.name for spec in layout.layers] == list(AIDO_LAYER_NAMES)
    assert [spec.active for spec in layout.layers] == [False, True] * 3
    assert layout.transverse_size_cm == 50.0
    assert all(spec.material is None and spec.thickness_cm is None for spec in layout.layers)
    assert layout.parameter_names() == set(aido_design_space().names)


def test_aido_calorimeter_is_the_starting_design() -> None:
    """Pb absorbers 40/10/10 cm and PbWO4 scintillators 5/5/5 cm (first category on the 0.5/0.5 ties):
    75 cm = 60/0.5612 + 15/0.8903 = 123.76 X0."""
    det = aido_calorimeter()
    assert [layer.material.name for layer in det.layers] == ["Pb", "PbWO4"] * 3
    assert [layer.thickness_cm for layer in det.layers] == [40.0, 5.0, 10.0, 5.0, 10.0, 5.0]
    assert det.active_mask.tolist() == [False, True] * 3
    assert det.depth_cm == pytest.approx(75.0)
    assert det.radiation_lengths == pytest.approx(60.0 / X0_PB_CM + 15.0 / X0_PBWO4_CM, rel=1e-12)
    assert det.radiation_lengths == pytest.approx(123.76, abs=0.01)


def test_example_file_is_the_aido_start() -> None:
    layout, space = load_design_file(EXAMPLE)
    assert layout == aido_layout()
    assert space == aido_design_space()
    assert layout.build(space.current_design()) == aido_calorimeter()


def test_example_file_builds_the_cheap_choice_when_it_is_more_probable(tmp_path: Path) -> None:
    """Probabilities 0.3/0.7 pick the second category: Fe absorbers, polystyrene scintillators (X0 1.757, 41.31 cm)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    for entry in data["parameters"]:
        if entry["name"].endswith("_material"):
            entry["probabilities"] = [0.3, 0.7]
    layout, space = parse_design_mapping(data)
    det = layout.build(space.current_design())
    assert [layer.material.name for layer in det.layers] == ["Fe", "polystyrene"] * 3
    assert det.radiation_lengths == pytest.approx(60.0 / 1.757 + 15.0 / 41.31, rel=1e-12)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    path = save_design_file(tmp_path / f"design{suffix}", aido_layout(), aido_design_space())
    assert load_design_file(path) == (aido_layout(), aido_design_space())


def test_missing_detector_section_means_the_aido_layout() -> None:
    layout, space = parse_design_mapping(aido_design_space().to_dict())
    assert layout == aido_layout() and space == aido_design_space()


def test_layers_may_fix_thickness_and_material() -> None:
    """A layer with thickness_cm and material needs no parameters; the others read them from the design."""
    data = {
        "detector": {
            "transverse_size_cm": 30.0,
            "layers": [
                {"name": "front", "active": False, "material": "W", "thickness_cm": 2.0},
                {"name": "sensor", "active": True},
            ],
        },
        "parameters": [
            {"name": "sensor_thickness", "value": 1.0, "bounds": [0.1, 5.0], "sigma": 0.1, "unit": "cm"},
            {"name": "sensor_material", "categories": ["Si", "polystyrene"], "probabilities": [0.6, 0.4]},
        ],
    }
    layout, space = parse_design_mapping(data)
    det = layout.build(space.current_design())
    assert [(layer.name, layer.material.name, layer.thickness_cm) for layer in det.layers] == [
        ("front", "W", 2.0), ("sensor", "Si", 1.0),
    ]
    assert det.transverse_size_cm == 30.0
    assert isinstance(layout, CalorimeterLayout)


def _aido_data() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def _without(data: dict, name: str) -> dict:
    data["parameters"] = [p for p in data["parameters"] if p["name"] != name]
    return data


def _edit_param(data: dict, name: str, **changes: object) -> dict:
    next(p for p in data["parameters"] if p["name"] == name).update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ([1, 2], "design.yaml", "must be a mapping"),
        ({**_aido_data(), "colour": 1}, "colour", "allowed: detector, version, parameters"),
        ({**_aido_data(), "detector": [1]}, "detector", "must be a mapping"),
        ({**_aido_data(), "detector": {"layers": []}}, "detector.layers", "at least 1"),
        ({**_aido_data(), "detector": {"layers": [{"name": "a"}]}}, "detector.layers[a].active", "required"),
        ({**_aido_data(), "detector": {"layers": [{"name": "a", "active": 1, "x": 2}]}}, "detector.layers[a].x",
         "allowed keys: name, active, material, thickness_cm"),
        ({**_aido_data(), "detector": {"layers": [{"name": "a", "active": True}] * 2}}, "detector.layers",
         "duplicate layer names: a"),
        ({**_aido_data(), "detector": {"layers": [{"name": "a", "active": True}], "transverse_size_cm": -1}},
         "detector.transverse_size_cm", "greater than 0"),
        (_without(_aido_data(), "absorber_1_thickness"), "parameters[absorber_1_thickness]", "has no thickness"),
        (_without(_aido_data(), "absorber_1_material"), "parameters[absorber_1_material]", "has no material"),
        (_edit_param(_aido_data(), "absorber_2_thickness", value=-3.0), "parameters[absorber_2_thickness].value",
         "allowed range"),
        (_edit_param(_aido_data(), "absorber_2_thickness", value=1.0, bounds=[0.0, 10.0]),
         "parameters[absorber_2_thickness].bounds", "lower bound must be > 0"),
        (_edit_param(_aido_data(), "absorber_2_material", categories=["Pb", "Fe", "Au"], probabilities=[0.4, 0.4, 0.2],
                     cost_per_unit=[1.0, 1.0, 1.0]),
         "parameters[absorber_2_material].categories", "unknown material 'Au'"),
    ],
)
def test_bad_design_raises_one_config_error_naming_field_and_file(data: object, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_design_mapping(data, source="design.yaml")
    assert info.value.field == field
    assert words in info.value.message
    assert "design.yaml" in str(info.value)


def test_parameter_types_must_match_their_role() -> None:
    data = _aido_data()
    data = _without(data, "absorber_0_thickness")
    data["parameters"].append({"name": "absorber_0_thickness", "categories": ["thin", "thick"]})
    with pytest.raises(ConfigError, match="must be a continuous parameter") as info:
        parse_design_mapping(data)
    assert info.value.field == "parameters[absorber_0_thickness]"


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown design file suffix '.txt'"):
        load_design_file(tmp_path / "design.txt")
    with pytest.raises(ConfigError, match="design file not found"):
        load_design_file(tmp_path / "nothing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_design_file(tmp_path)
    broken = tmp_path / "broken.yml"
    broken.write_text("detector: {layers: [\n")
    with pytest.raises(ConfigError, match="malformed YAML") as info:
        load_design_file(broken)
    assert info.value.field == str(broken)
    with pytest.raises(ConfigError, match="unknown design file suffix"):
        save_design_file(tmp_path / "design.toml", aido_layout(), aido_design_space())
