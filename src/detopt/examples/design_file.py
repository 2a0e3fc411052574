"""Design files: one YAML or JSON file holding a detector layout and its design space.

A design file has two top-level keys::

    detector:            # a CalorimeterLayout: layer order, readout, transverse size
      transverse_size_cm: 50.0
      layers:
        - {name: absorber_0, active: false}
        - {name: scintillator_0, active: true}
    version: 1           # optional, the design-space format version
    parameters:          # a DesignSpace: <layer>_thickness (cm) and <layer>_material per layer
      - {name: absorber_0_thickness, value: 40.0, bounds: [0.01, 200.0], sigma: 2.5, unit: cm}
      - {name: absorber_0_material, categories: [Pb, Fe], probabilities: [0.5, 0.5]}

Without ``detector`` the layout of the AIDO example (:func:`detopt.examples.aido.aido_layout`)
is used. Loading checks the file as a whole, so that a mistake shows before any
simulation runs: every layer gets a thickness and a material (from the layout or
a parameter), every parameter is read by some layer, thicknesses are continuous
with a lower bound > 0, and every material category is in the material table.
Every problem raises :class:`detopt.errors.ConfigError` naming the field and the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from detopt.atomic import write_text_atomic
from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.design.space import read_design_text
from detopt.detector import CalorimeterLayout, LayerSpec, get_material
from detopt.errors import ConfigError
from detopt.examples.aido import aido_layout

__all__ = ["DESIGN_FILE_SUFFIXES", "design_file_dict", "load_design_file", "parse_design_mapping", "save_design_file"]

DESIGN_FILE_SUFFIXES: Mapping[str, str] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
"""File suffix -> format of a design file."""

_TOP_LEVEL_KEYS = ("detector", "version", "parameters")


def load_design_file(path: str | Path) -> tuple[CalorimeterLayout, DesignSpace]:
    """Read and check a design file (.yaml, .yml, .json): the layout (AIDO's when absent) and the design space."""
    path = Path(path)
    text, kind = read_design_text(path)
    return parse_design_mapping(_parse_text(text, kind, str(path)), source=str(path))


def parse_design_mapping(
    data: Any, *, source: str | None = None
) -> tuple[CalorimeterLayout, DesignSpace]:
    """Check the already-parsed content of a design file (see the module docstring)."""
    where = f" (in {source})" if source else ""
    if not isinstance(data, Mapping):
        raise ConfigError(
            source or "design",
            f"a design file must be a mapping with keys {', '.join(_TOP_LEVEL_KEYS)}, got {type(data).__name__}",
        )
    unknown = [str(k) for k in data if k not in _TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(
            unknown[0], f"unknown top-level key {unknown[0]!r}; allowed: {', '.join(_TOP_LEVEL_KEYS)}{where}"
        )
    if "detector" in data:
        layout = _layout_from_mapping(data["detector"], where)
    else:
        layout = aido_layout()
    space = DesignSpace.from_mapping(data, ignore=("detector",), source=source)
    _check_consistency(layout, space, where)
    return layout, space


def design_file_dict(layout: CalorimeterLayout, space: DesignSpace) -> dict[str, Any]:
    """The JSON/YAML-ready content of a design file; unset layer fields are left out."""
    return {"detector": layout.model_dump(mode="json", exclude_none=True), **space.to_dict()}


def save_design_file(path: str | Path, layout: CalorimeterLayout, space: DesignSpace) -> Path:
    """Write a design file atomically, as YAML or JSON by the suffix; it loads back with :func:`load_design_file`."""
    path = Path(path)
    kind = DESIGN_FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(str(path), f"unknown design file suffix {path.suffix!r}; use .yaml, .yml or .json")
    data = design_file_dict(layout, space)
    if kind == "json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    write_text_atomic(path, text)
    return path


# ------------------------------------------------------------------------------ helpers


def _parse_text(text: str, kind: str, source: str) -> Any:
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(source, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(source, f"malformed YAML: {problem}{at}") from None


def _layout_from_mapping(raw: Any, where: str) -> CalorimeterLayout:
    """Validate the ``detector`` section; the first problem becomes a ConfigError naming the layer by name."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            "detector", f"must be a mapping with 'layers' (and optional 'transverse_size_cm'){where}"
        )
    try:
        return CalorimeterLayout.model_validate(raw)
    except ValidationError as exc:
        field, message = _render_layout_error(exc.errors()[0], raw)
        extra = len(exc.errors()) - 1
        more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
        raise ConfigError(field, f"{message}{more}{where}") from None


def _render_layout_error(error: Mapping[str, Any], raw: Mapping[str, Any]) -> tuple[str, str]:
    loc = list(error["loc"])
    field = "detector"
    model: type[BaseModel] = CalorimeterLayout
    i = 0
    while i < len(loc):
        part = loc[i]
        if part == "layers" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            field += f".layers[{_layer_label(raw, loc[i + 1])}]"
            model = LayerSpec
            i += 2
            continue
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
        i += 1
    kind = error["type"]
    if kind == "extra_forbidden":
        return field, f"unknown key {str(loc[-1])!r}; allowed keys: {', '.join(model.model_fields)}"
    if kind == "missing":
        return field, "required key is missing"
    if kind == "value_error":  # a validator's own sentence names what is wrong
        return field, error["msg"].removeprefix("Value error, ")
    got = repr(error.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return field, f"{error['msg']}, got {got}"


def _layer_label(raw: Mapping[str, Any], index: int) -> str:
    layers = raw.get("layers")
    if isinstance(layers, list) and 0 <= index < len(layers) and isinstance(layers[index], Mapping):
        name = layers[index].get("name")
        if isinstance(name, str) and name:
            return name
    return str(index)


def _check_consistency(layout: CalorimeterLayout, space: DesignSpace, where: str) -> None:
    """Every layer gets a thickness and a material, every parameter is used, values are physical."""
    names = [spec.name for spec in layout.layers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("detector.layers", f"duplicate layer names: {', '.join(duplicates)}{where}")
    read = layout.parameter_names()
    unused = [name for name in space.names if name not in read]
    if unused:
        raise ConfigError(
            f"parameters[{unused[0]}]",
            f"not read by any layer; a layer reads <layer>_thickness and <layer>_material, layers: "
            f"{', '.join(names)}{where}",
        )
    for spec in layout.layers:
        t_key, m_key = f"{spec.name}_thickness", f"{spec.name}_material"
        if t_key in space:
            thickness = space[t_key]
            if not isinstance(thickness, ContinuousParameter):
                raise ConfigError(f"parameters[{t_key}]", f"a thickness must be a continuous parameter (cm){where}")
            if thickness.bounds[0] <= 0:
                raise ConfigError(
                    f"parameters[{t_key}].bounds",
                    f"a thickness must stay > 0 cm: the lower bound must be > 0, got {thickness.bounds[0]}{where}",
                )
        elif spec.thickness_cm is None:
            raise ConfigError(
                f"parameters[{t_key}]",
                f"layer {spec.name!r} has no thickness: add this parameter or thickness_cm to the layer{where}",
            )
        if m_key in space:
            material = space[m_key]
            if not isinstance(material, DiscreteParameter):
                raise ConfigError(
                    f"parameters[{m_key}]", f"a material must be a discrete parameter (categories){where}"
                )
            for category in material.categories:
                _check_material(category, f"parameters[{m_key}].categories", where)
        elif spec.material is None:
            raise ConfigError(
                f"parameters[{m_key}]",
                f"layer {spec.name!r} has no material: add this parameter or material to the layer{where}",
            )
        else:
            _check_material(spec.material, f"detector.layers[{spec.name}].material", where)


def _check_material(name: str, field: str, where: str) -> None:
    try:
        get_material(name)
    except ConfigError as exc:
        raise ConfigError(field, f"{exc.message}{where}") from None
