"""Parsing and checking of the ``detopt simulate`` options; each failure is a ConfigError named after the option.

Light on purpose (no numpy at import): ``detopt --help`` imports this module.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from detopt.errors import ConfigError

__all__ = ["OUTPUT_SUFFIXES", "check_events", "check_output_path", "check_seed", "parse_energy", "parse_voxels"]

OUTPUT_SUFFIXES = (".parquet", ".pq")
"""Allowed suffixes of an event file."""


MAX_EVENTS = 10_000_000
"""The most events one command simulates: they are held in memory together (about 1 GB of deposits at 10^7)."""

MAX_BEAM_ENERGY_GEV = 100_000.0
"""Highest beam energy accepted, GeV (100 TeV: beyond any collider beam; the shower parametrizations stop far below)."""


def check_events(n_events: int) -> int:
    """``--events``: a whole number from 1 to MAX_EVENTS."""
    if isinstance(n_events, bool) or not isinstance(n_events, int) or not 0 < n_events <= MAX_EVENTS:
        raise ConfigError("--events", f"number of events must be a whole number > 0 and <= {MAX_EVENTS:,}, got {n_events!r}")
    return n_events


def check_seed(seed: int) -> int:
    """``--seed``: a whole number >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("--seed", f"must be a whole number >= 0, got {seed!r}")
    return seed


def parse_energy(text: str) -> tuple[float, float]:
    """``--energy``: ``MIN:MAX`` in GeV with 0 < MIN <= MAX (uniform), or one number for a fixed energy."""
    allowed = f"MIN:MAX in GeV with 0 < MIN <= MAX <= {MAX_BEAM_ENERGY_GEV:g} (e.g. 1:20), or one energy in (0, {MAX_BEAM_ENERGY_GEV:g}]"
    parts = text.split(":")
    if len(parts) not in (1, 2):
        raise ConfigError("--energy", f"must be {allowed}, got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ConfigError("--energy", f"must be {allowed}, got {text!r}") from None
    lo, hi = (values[0], values[0]) if len(values) == 1 else (values[0], values[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo or hi > MAX_BEAM_ENERGY_GEV:
        raise ConfigError("--energy", f"must be {allowed}, got {text!r}")
    return lo, hi


def parse_voxels(text: str) -> tuple[int, int]:
    """``--voxels``: ``DEPTHxRADIAL``, the number of depth slices and radial rings, each 1 to 1000 (e.g. 24x16)."""
    allowed = "DEPTHxRADIAL, depth slices x radial rings, each a whole number from 1 to 1000 (e.g. 24x16)"
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise ConfigError("--voxels", f"must be {allowed}, got {text!r}")
    try:
        n_depth, n_radial = (int(p) for p in parts)
    except ValueError:
        raise ConfigError("--voxels", f"must be {allowed}, got {text!r}") from None
    if not (1 <= n_depth <= 1000 and 1 <= n_radial <= 1000):
        raise ConfigError("--voxels", f"must be {allowed}, got {text!r}")
    return n_depth, n_radial


def check_output_path(path: Path) -> Path:
    """``--output``: a ``.parquet`` file name in a folder that exists (or can be made) and is writable.

    Checked before simulating, so that a typo costs nothing; the file itself is
    written atomically afterwards.
    """
    if path.is_dir():
        raise ConfigError("--output", f"{str(path)!r} is a directory; give a file name ending in .parquet")
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError("--output", f"must be a file name ending in .parquet, got {str(path)!r}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError("--output", f"cannot write {str(path)!r}: {str(folder)!r} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError("--output", f"cannot write {str(path)!r}: no write permission in {str(folder)!r}")
    return path
