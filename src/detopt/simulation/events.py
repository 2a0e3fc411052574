"""`EventBatch`: simulated events of one detector, and their Parquet / ROOT input-output."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from detopt.atomic import atomic_path, read_parquet
from detopt.errors import ConfigError, DataError
from detopt.simulation.particles import PARTICLES, particle_code

_META_KEY = b"detopt"


def _finite(values: np.ndarray, where: str, *, positive: bool = False) -> np.ndarray:
    """``values`` as float64, or DataError naming ``where`` and the first bad row (NaN, inf, or <= 0 if ``positive``)."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected numbers, got values of type {np.asarray(values).dtype}") from None
    bad = ~np.isfinite(out) | ((out <= 0) if positive else False)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        allowed = "finite numbers > 0" if positive else "finite numbers"
        raise DataError(f"{where}: row {row} holds {out[row]!r}; allowed: {allowed}")
    return out


def _particle_codes(values: Sequence[object], where: str) -> np.ndarray:
    """Integer particle codes of names or PDG IDs; DataError naming ``where`` for an unknown one."""
    try:
        return np.array([particle_code(str(p.decode() if isinstance(p, bytes) else p)) for p in values], dtype=np.int8)
    except ConfigError as exc:
        raise DataError(f"{where}: {exc.message}") from None


def _parquet_metadata(raw: bytes, path: Path) -> dict:
    """The detopt metadata of an event file, checked (layer names, active flags, voxel shape)."""
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise DataError(f"{path}: the detopt metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: the detopt metadata must be a JSON object, got {type(meta).__name__}")
    names, active, voxel_shape = meta.get("layer_names"), meta.get("active"), meta.get("voxel_shape")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: metadata field 'layer_names' must be a non-empty list of layer names")
    if not isinstance(active, list) or len(active) != len(names) or not all(isinstance(a, bool) for a in active):
        raise DataError(f"{path}: metadata field 'active' must list one true/false flag per layer ({len(names)})")
    if voxel_shape is not None and (
        not isinstance(voxel_shape, list) or len(voxel_shape) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in voxel_shape)
    ):
        raise DataError(f"{path}: metadata field 'voxel_shape' must be null or [n_depth, n_radial], each >= 1")
    return meta


@dataclass(frozen=True)
class EventBatch:
    """Per-event truth and deposited energies of one detector.

    Shapes (``n`` events, ``L`` layers): ``particle (n,)`` integer codes into `PARTICLES`;
    ``energy (n,)`` true energy in GeV; ``deposits (n, L)`` deposited energy per layer in GeV;
    ``first_interaction_cm (n,)`` depth of the first inelastic interaction of a hadron (NaN for
    EM particles and for hadrons that pass through); ``voxels (n, n_depth, n_radial)`` in GeV or
    None. ``metadata`` holds JSON-able run information (design, seed, simulator).
    """

    particle: np.ndarray
    energy: np.ndarray
    deposits: np.ndarray
    first_interaction_cm: np.ndarray
    layer_names: tuple[str, ...]
    active: tuple[bool, ...]
    voxels: np.ndarray | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.energy.shape[0]
        if self.energy.ndim != 1:
            raise DataError(f"energy: expected shape (n_events,), got {self.energy.shape}")
        if self.particle.shape != (n,):
            raise DataError(f"particle: expected shape ({n},), got {self.particle.shape}")
        if self.first_interaction_cm.shape != (n,):
            raise DataError(f"first_interaction_cm: expected shape ({n},), got {self.first_interaction_cm.shape}")
        if self.deposits.shape != (n, len(self.layer_names)):
            raise DataError(
                f"deposits: expected shape ({n}, {len(self.layer_names)}) (n_events, n_layers), got {self.deposits.shape}"
            )
        if len(self.active) != len(self.layer_names):
            raise DataError("active: needs one flag per layer")
        if self.voxels is not None and (self.voxels.ndim != 3 or self.voxels.shape[0] != n):
            raise DataError(f"voxels: expected shape ({n}, n_depth, n_radial), got {self.voxels.shape}")

    def __len__(self) -> int:
        return int(self.energy.shape[0])

    @property
    def particle_names(self) -> np.ndarray:
        return np.asarray(PARTICLES, dtype=object)[self.particle]

    @property
    def active_deposits(self) -> np.ndarray:
        """Deposits of the read-out layers only, ``(n, n_active)``: the features F_sim of the AIDO paper."""
        return self.deposits[:, np.asarray(self.active, dtype=bool)]

    @property
    def total_deposit(self) -> np.ndarray:
        return self.deposits.sum(axis=1)

    def particle_onehot(self, particles: Sequence[str] = PARTICLES) -> np.ndarray:
        """One-hot encoding of the particle over ``particles`` (the context of the networks)."""
        codes = [particle_code(p) for p in particles]
        return (self.particle[:, None] == np.asarray(codes)[None, :]).astype(np.float64)

    def select(self, mask: np.ndarray) -> "EventBatch":
        """The events where ``mask`` (boolean or index array) is set."""
        return replace(
            self,
            particle=self.particle[mask], energy=self.energy[mask], deposits=self.deposits[mask],
            first_interaction_cm=self.first_interaction_cm[mask],
            voxels=None if self.voxels is None else self.voxels[mask],
        )

    @staticmethod
    def concatenate(batches: Sequence["EventBatch"]) -> "EventBatch":
        """Join batches of the same detector layout (metadata of the first is kept)."""
        if not batches:
            raise DataError("concatenate: no batches given")
        first = batches[0]
        for b in batches[1:]:
            if b.layer_names != first.layer_names or b.active != first.active:
                raise DataError("concatenate: batches have different layers")
            if (b.voxels is None) != (first.voxels is None):
                raise DataError("concatenate: some batches have voxel maps and some do not")
        return EventBatch(
            particle=np.concatenate([b.particle for b in batches]),
            energy=np.concatenate([b.energy for b in batches]),
            deposits=np.concatenate([b.deposits for b in batches]),
            first_interaction_cm=np.concatenate([b.first_interaction_cm for b in batches]),
            layer_names=first.layer_names, active=first.active,
            voxels=None if first.voxels is None else np.concatenate([b.voxels for b in batches]),
            metadata=dict(first.metadata),
        )

    # -- Parquet ---------------------------------------------------------------------------
    def to_table(self):  # -> pyarrow.Table
        import pyarrow as pa

        cols: dict[str, object] = {
            "particle": pa.array(self.particle_names.astype(str)),
            "energy_gev": pa.array(self.energy, pa.float64()),
            "first_interaction_cm": pa.array(self.first_interaction_cm, pa.float64()),
        }
        for i, name in enumerate(self.layer_names):
            cols[f"edep_{name}_gev"] = pa.array(self.deposits[:, i], pa.float64())
        if self.voxels is not None:
            n, nd, nr = self.voxels.shape
            flat = pa.array(self.voxels.reshape(n * nd * nr).astype(np.float32), pa.float32())
            cols["voxels_gev"] = pa.FixedSizeListArray.from_arrays(flat, nd * nr)
        meta = {
            "layer_names": list(self.layer_names), "active": list(self.active),
            "voxel_shape": None if self.voxels is None else list(self.voxels.shape[1:]),
            **{k: v for k, v in self.metadata.items()},
        }
        table = pa.table(cols)
        return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})

    def to_parquet(self, path: str | Path) -> Path:
        """Write atomically to ``path``; the design, seed and layers go in the file metadata."""
        import pyarrow.parquet as pq

        path = Path(path)
        with atomic_path(path) as tmp:
            pq.write_table(self.to_table(), tmp)
        return path

    @classmethod
    def from_parquet(cls, path: str | Path) -> "EventBatch":
        """Read a file written by :meth:`to_parquet`; DataError names the file and the column at fault
        (missing, wrong type, NaN or inf; energies must be > 0)."""
        import pyarrow as pa

        path = Path(path)
        table, raw = read_parquet(path, _META_KEY)
        if raw is None:
            raise DataError(f"{path}: no detopt metadata; use EventBatch.from_columns for foreign files")
        meta = _parquet_metadata(raw, path)
        layer_names = tuple(meta.pop("layer_names"))
        active = tuple(meta.pop("active"))
        voxel_shape = meta.pop("voxel_shape", None)
        deposit_columns = [f"edep_{n}_gev" for n in layer_names]
        required = ["particle", "energy_gev", "first_interaction_cm", *deposit_columns]
        required += ["voxels_gev"] if voxel_shape is not None else []
        missing = [c for c in required if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; found {table.column_names}")

        def number_column(name: str) -> np.ndarray:
            column = table.column(name)
            if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
                raise DataError(f"{path}: column {name!r} has type {column.type}, expected numbers (float64)")
            return column.to_numpy(zero_copy_only=False).astype(np.float64)

        voxels = None
        if voxel_shape is not None:
            try:
                flat = table.column("voxels_gev").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                voxels = _finite(flat, f"{path}: column 'voxels_gev'").reshape(table.num_rows, *voxel_shape)
            except (ValueError, pa.ArrowException) as exc:
                raise DataError(f"{path}: column 'voxels_gev' does not hold {voxel_shape} maps per event ({exc})") from None
        particles = table.column("particle")
        if not pa.types.is_string(particles.type) and not pa.types.is_large_string(particles.type):
            raise DataError(f"{path}: column 'particle' has type {particles.type}, expected particle names (string)")
        first = number_column("first_interaction_cm")  # NaN is allowed: no inelastic interaction
        return cls(
            particle=_particle_codes(particles.to_pylist(), f"{path}: column 'particle'"),
            energy=_finite(number_column("energy_gev"), f"{path}: column 'energy_gev'", positive=True),
            deposits=np.stack([_finite(number_column(c), f"{path}: column {c!r}") for c in deposit_columns], axis=1),
            first_interaction_cm=first,
            layer_names=layer_names, active=active, voxels=voxels, metadata=meta,
        )

    # -- ROOT ------------------------------------------------------------------------------
    @classmethod
    def from_root(
        cls,
        path: str | Path,
        tree: str,
        layer_branches: Sequence[str],
        active: Sequence[bool],
        energy_branch: str = "energy",
        particle_branch: str = "particle",
        energy_scale: float = 1.0,
    ) -> "EventBatch":
        """Read events that a user's own simulation wrote to a ROOT TTree, through uproot.

        ``layer_branches`` name one branch of deposited energy per layer (in order along the
        beam); ``energy_scale`` converts the file's unit to GeV (1e-3 for MeV). The particle
        branch may hold PDG IDs (22, 11, 211) or names.
        """
        import uproot

        path = Path(path)
        if len(active) != len(layer_branches):
            raise DataError("active: needs one flag per layer branch")
        try:
            with uproot.open(path) as f:
                if tree not in f:
                    raise DataError(f"{path}: no tree {tree!r}; found {sorted(k.split(';')[0] for k in f.keys())}")
                t = f[tree]
                missing = [b for b in (*layer_branches, energy_branch, particle_branch) if b not in t.keys()]
                if missing:
                    raise DataError(f"{path}:{tree}: missing branches {missing}; found {sorted(t.keys())}")
                arrays = t.arrays([*layer_branches, energy_branch, particle_branch], library="np")
        except DataError:
            raise
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except Exception as exc:
            raise DataError(f"{path}: not a readable ROOT file ({exc})") from None
        codes = _particle_codes(arrays[particle_branch], f"{path}:{tree}: branch {particle_branch!r}")
        deposits = np.stack(
            [_finite(arrays[b], f"{path}:{tree}: branch {b!r}") * energy_scale for b in layer_branches], axis=1
        )
        energy = _finite(arrays[energy_branch], f"{path}:{tree}: branch {energy_branch!r}", positive=True) * energy_scale
        n = deposits.shape[0]
        return cls(
            particle=codes, energy=energy, deposits=deposits,
            first_interaction_cm=np.full(n, np.nan), layer_names=tuple(layer_branches),
            active=tuple(bool(a) for a in active), metadata={"source": str(path)},
        )
