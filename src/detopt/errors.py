"""Exceptions raised for bad input; each names the field at fault and what is allowed."""

from __future__ import annotations


class DetoptError(Exception):
    """Base class of every error detopt raises on purpose."""


class ConfigError(DetoptError, ValueError):
    """A configuration, design or input value is invalid.

    ``field`` names the offending field (dotted path where nested) so that the
    CLI can print one precise line.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class DataError(DetoptError, ValueError):
    """Data read from disk or passed in memory is malformed (shape, NaN, corrupt file)."""
