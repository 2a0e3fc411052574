"""`EventBatch`: simulated events of one detector, and their Parquet / ROOT input-output."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from detopt.atomic import atomic_path
from detopt.errors import DataError
from detopt.simulation.particles import PARTICLES, particle_code

_META_KEY = b"detopt"


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
        import pyarrow.parquet as pq

        path = Path(path)
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise DataError(f"{path}: no detopt metadata; use EventBatch.from_columns for foreign files")
        meta = json.loads(raw)
        layer_names = tuple(meta.pop("layer_names"))
        active = tuple(bool(a) for a in meta.pop("active"))
        voxel_shape = meta.pop("voxel_shape")
        voxels = None
        if voxel_shape is not None:
            flat = table.column("voxels_gev").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            voxels = flat.reshape(table.num_rows, *voxel_shape)
        return cls(
            particle=np.array([particle_code(p) for p in table.column("particle").to_pylist()], dtype=np.int8),
            energy=table.column("energy_gev").to_numpy(),
            deposits=np.stack([table.column(f"edep_{n}_gev").to_numpy() for n in layer_names], axis=1),
            first_interaction_cm=table.column("first_interaction_cm").to_numpy(),
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
        particles = arrays[particle_branch]
        codes = np.array([particle_code(str(p.decode() if isinstance(p, bytes) else p)) for p in particles], dtype=np.int8)
        deposits = np.stack([np.asarray(arrays[b], dtype=float) * energy_scale for b in layer_branches], axis=1)
        n = deposits.shape[0]
        return cls(
            particle=codes, energy=np.asarray(arrays[energy_branch], dtype=float) * energy_scale, deposits=deposits,
            first_interaction_cm=np.full(n, np.nan), layer_names=tuple(layer_branches),
            active=tuple(bool(a) for a in active), metadata={"source": str(path)},
        )
