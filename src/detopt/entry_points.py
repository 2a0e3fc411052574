"""User code named in a run configuration: ``package.module:attribute`` looked up on an import path.

A run configuration names a user's simulation, reconstruction, loss or constraint by an entry
point; ``python_path`` (folders, relative to the configuration) lists where its module lives.
Entry points are resolved once when the configuration is loaded (so a typo stops the run before
any work) and again inside each Dask worker (:class:`EntryPoint` is a small picklable reference).
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detopt.errors import ConfigError

__all__ = ["EntryPoint", "parse_entry_point"]

_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class EntryPoint:
    """``module:attribute`` importable once ``path`` (absolute folders) is on ``sys.path``."""

    spec: str
    path: tuple[str, ...] = ()
    field: str = "entry point"

    def load(self) -> Any:
        """The object named by the entry point; a ConfigError naming ``field`` when it cannot be imported."""
        module_name, _, attribute = self.spec.partition(":")
        for folder in reversed(self.path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            where = f" (searched python_path: {', '.join(self.path)})" if self.path else ""
            raise ConfigError(self.field, f"cannot import module {exc.name!r} of {self.spec!r}{where}") from None
        except Exception as exc:  # the user's module raised while importing
            raise ConfigError(self.field, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
        for part in attribute.split("."):
            if not hasattr(obj, part):
                raise ConfigError(self.field, f"{module_name!r} has no attribute {attribute!r}")
            obj = getattr(obj, part)
        if not callable(obj):
            raise ConfigError(self.field, f"{self.spec!r} is not callable")
        return obj


def parse_entry_point(text: Any, field: str, path: tuple[str, ...] = ()) -> EntryPoint:
    """Check the form ``package.module:function`` (the loading is :meth:`EntryPoint.load`)."""
    if not isinstance(text, str) or not _PATTERN.match(text):
        raise ConfigError(field, f"must be an entry point 'package.module:function', got {text!r}")
    return EntryPoint(text, tuple(str(Path(p)) for p in path), field)
