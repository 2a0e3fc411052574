"""The configuration reference (docs/configuration.md), generated from the pydantic models of the run configuration.

Each key's description is the ``#:`` comment above it (or the ``#`` comment after it) in
:mod:`detopt.optimize.config`, so the reference cannot drift from the code:
``python docs/scripts/config_reference.py`` regenerates it and a test checks it is current.
"""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["reference_markdown"]

HEADER = """# Run configuration reference

Generated from the code by `python docs/scripts/config_reference.py` (a test checks that this file is
current). Every key is optional unless its default says *required*; unknown keys are errors. Relative
paths start from the folder of the configuration file. How to use them: [your_detector.md](your_detector.md).
"""


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> its ``#:`` comment lines (or trailing ``#`` comment) in the class source."""
    try:
        lines = inspect.getsource(model).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"^\s{4}([a-z_][a-z0-9_]*)\s*:", line)
        if match and match.group(1) in model.model_fields:
            text = " ".join(pending)
            trailing = re.search(r"\)?\s+#\s*(.+)$", line)
            if not text and trailing and "type: ignore" not in trailing.group(1):
                text = trailing.group(1)
            found[match.group(1)] = text
        pending = [] if not stripped.startswith("#") else pending
    return found


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("detopt.optimize.config.", "").replace("detopt.execution.clusters.", "")
    text = re.sub(r"<class '([^']+)'>", r"\1", text)
    return text.replace("NoneType", "None")


def _models(annotation: Any) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _default(field: Any) -> str:
    if field.is_required():
        return "*required*"
    value = field.default
    if value is PydanticUndefined:
        value = field.default_factory() if field.default_factory else None
    if isinstance(value, BaseModel):
        return "(see below)"
    return f"`{value!r}`".replace("|", "\\|")


def reference_markdown() -> str:
    """The whole reference as Markdown: one table per section of the configuration."""
    from detopt.optimize.config import RunConfig

    out = [HEADER]
    queue: list[tuple[str, type[BaseModel]]] = [("", RunConfig)]
    seen: set[type[BaseModel]] = set()
    while queue:
        prefix, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        comments = _comments(model)
        title = prefix or "top level"
        doc = inspect.cleandoc(model.__dict__.get("__doc__") or "").split("\n\n")[0].replace("\n", " ")
        out.append(f"\n## `{title}`\n" if prefix else "\n## Top level\n")
        if doc and model is not RunConfig:
            out.append(doc + "\n")
        out.append("| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            meaning = comments.get(name, "").replace("|", "\\|")
            kind = _type_name(field.annotation).replace("|", "\\|")
            out.append(f"| `{name}` | `{kind}` | {_default(field)} | {meaning} |")
            for sub in _models(field.annotation):
                queue.append((f"{prefix}.{name}" if prefix else name, sub))
    return "\n".join(out) + "\n"
