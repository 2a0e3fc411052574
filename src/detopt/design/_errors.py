"""Turn pydantic validation failures into one-line :class:`~detopt.errors.ConfigError` s.

Validators in this package raise :class:`FieldValueError` when a check spans
several fields (a value against its bounds, duplicate names), so that the error
still names the precise field, e.g. ``parameters[absorber_0_thickness].value``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from detopt.errors import ConfigError

__all__ = ["FieldValueError", "config_error_from_validation"]

_PARAMETER_TAGS = ("continuous", "discrete")
_MAX_INPUT_REPR = 60


class FieldValueError(ValueError):
    """A validation failure that knows which field (relative to the model being validated) it concerns."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _parameter_label(raw: Any, index: int) -> str:
    """``name`` of the ``index``-th raw parameter entry when it has one, else the index."""
    if isinstance(raw, Mapping):
        entries = raw.get("parameters")
        if isinstance(entries, Sequence) and not isinstance(entries, str) and 0 <= index < len(entries):
            entry = entries[index]
            name = entry.get("name") if isinstance(entry, Mapping) else getattr(entry, "name", None)
            if isinstance(name, str) and name:
                return name
    return str(index)


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 3] + "..."


def _render(
    error: Mapping[str, Any],
    raw: Any,
    root: str,
    root_model: type[BaseModel],
    tag_models: Mapping[str, type[BaseModel]],
) -> tuple[str, str]:
    """(field path, message) of one pydantic error dict."""
    loc = list(error["loc"])
    path = root
    model = root_model
    i = 0
    while i < len(loc):
        part = loc[i]
        if part == "parameters" and root == "" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            path = f"parameters[{_parameter_label(raw, loc[i + 1])}]"
            i += 2
            if i < len(loc) and loc[i] in _PARAMETER_TAGS:
                model = tag_models[str(loc[i])]
                i += 1
            continue
        path = _join(path, part)
        i += 1

    kind = error["type"]
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, ConfigError):  # raised by a nested model's own __init__: already complete
        return cause.field, cause.message
    if isinstance(cause, FieldValueError):
        path = _join(path, cause.field) if not cause.field.startswith("parameters[") else cause.field
        message = str(cause)
    elif kind in ("value_error", "assertion_error") and cause is not None:
        message = str(cause)
    elif kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        message = f"unknown key {str(loc[-1])!r}; allowed keys: {allowed}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "union_tag_not_found":
        message = "cannot tell the parameter type; set 'type' to 'continuous' or 'discrete'"
    elif kind == "union_tag_invalid":
        message = f"unknown parameter type {ctx.get('tag')!r}; allowed: 'continuous', 'discrete'"
    else:
        message = f"{error['msg']}, got {_short_repr(error.get('input'))}"
    return path or "design", message


def config_error_from_validation(
    exc: ValidationError,
    raw: Any,
    *,
    root: str,
    root_model: type[BaseModel],
    tag_models: Mapping[str, type[BaseModel]],
) -> ConfigError:
    """One :class:`ConfigError` describing the first problem of ``exc`` (and how many more there are).

    ``raw`` is the input that failed (used to name parameters by their ``name``
    instead of their list index), ``root`` the field path of the model being
    validated (``""`` for a design space, ``parameters[<name>]`` for a parameter).
    """
    errors = exc.errors()
    field, message = _render(errors[0], raw, root, root_model, tag_models)
    if len(errors) > 1:
        extra = len(errors) - 1
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return ConfigError(field, message)
