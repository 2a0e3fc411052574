"""Particle species known to the simulators, with their integer codes in an `EventBatch`."""

from __future__ import annotations

from collections.abc import Iterable

from detopt.errors import ConfigError

#: Canonical names, in code order (code = index). PDG IDs for reference: 22, 11, 211.
PARTICLES: tuple[str, ...] = ("gamma", "e-", "pi+")
PDG_ID: dict[str, int] = {"gamma": 22, "e-": 11, "pi+": 211}
EM_PARTICLES: frozenset[str] = frozenset({"gamma", "e-"})

_ALIASES = {
    "gamma": "gamma", "photon": "gamma", "22": "gamma",
    "e-": "e-", "electron": "e-", "11": "e-",
    "pi+": "pi+", "pion": "pi+", "pi": "pi+", "211": "pi+",
}


def particle_code(name: str) -> int:
    """The integer code of a particle name (aliases: photon, electron, pion, PDG IDs)."""
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ConfigError("particles", f"unknown particle {name!r}; allowed: {', '.join(PARTICLES)}")
    return PARTICLES.index(_ALIASES[key])


def parse_particles(names: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical names of a comma-separated string or a sequence; rejects empty lists and unknown names."""
    items = [s for s in names.split(",")] if isinstance(names, str) else list(names)
    items = [s.strip() for s in items if str(s).strip()]
    if not items:
        raise ConfigError("particles", f"at least one particle is needed; allowed: {', '.join(PARTICLES)}")
    out: list[str] = []
    for s in items:
        canonical = PARTICLES[particle_code(s)]
        if canonical not in out:
            out.append(canonical)
    return tuple(out)
