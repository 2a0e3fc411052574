"""High-level observables of voxelized showers (depth slices x radial rings), numpy or torch.

Every function takes maps ``(n, n_depth, n_radial)`` in GeV and, where needed, the slice or ring
edges in cm, either shared ``(k + 1,)`` or per shower ``(n, k + 1)``; it returns the same kind
of array it was given (a torch tensor keeps its graph, so the surrogate can differentiate a
utility built from these). A voxel's position is its bin centre (the CaloChallenge convention);
containment inside a radius or depth interpolates within the bin assuming energy uniform in
area (rings) or depth (slices).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from detopt.errors import DataError

__all__ = [
    "OBSERVABLES",
    "bin_centres",
    "dataset_observables",
    "energy_per_ring",
    "energy_per_slice",
    "energy_weighted_radius",
    "high_level_observables",
    "lateral_containment",
    "longitudinal_centre",
    "longitudinal_containment",
    "longitudinal_spread",
    "shower_dispersion",
    "total_energy",
]

#: Names (with units) of the per-shower observables of `high_level_observables`, in order.
OBSERVABLES: tuple[str, ...] = (
    "total_energy_gev", "radius_cm", "dispersion_cm", "long_centre_cm", "long_spread_cm",
)

Array = Any  # numpy.ndarray or torch.Tensor

#: Energy below which a shower counts as empty (GeV): its centre and widths are 0, not NaN.
_EMPTY_GEV = 1e-12


def _is_torch(x: Array) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _check_maps(maps: Array) -> Array:
    if not _is_torch(maps):
        maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise DataError(f"maps: expected shape (n, n_depth, n_radial), got {tuple(maps.shape)}")
    return maps


def _edges_like(edges: Array, maps: Array, n_bins: int, what: str) -> Array:
    """Edges as ``(1 or n, n_bins + 1)`` in the backend, dtype and device of ``maps``."""
    if _is_torch(maps):
        import torch

        e = torch.as_tensor(edges, dtype=maps.dtype, device=maps.device)
    else:
        e = np.asarray(edges, dtype=np.float64)
    if e.ndim == 1:
        e = e[None, :]
    if e.ndim != 2 or e.shape[1] != n_bins + 1 or e.shape[0] not in (1, maps.shape[0]):
        raise DataError(
            f"{what}: expected shape ({n_bins + 1},) or ({maps.shape[0]}, {n_bins + 1}), got {tuple(e.shape)}"
        )
    return e


def _clip(x: Array, lo: float, hi: float | None = None) -> Array:
    if _is_torch(x):
        return x.clamp(min=lo, max=hi)
    return np.clip(x, lo, hi)


def _per_shower(value: Array, maps: Array) -> Array:
    """A scalar or ``(n,)`` value as a column ``(1 or n, 1)`` in the backend of ``maps``."""
    if _is_torch(maps):
        import torch

        v = torch.as_tensor(value, dtype=maps.dtype, device=maps.device)
    else:
        v = np.asarray(value, dtype=np.float64)
    return v.reshape(-1, 1)


def bin_centres(edges: Array) -> Array:
    """Midpoints of consecutive edges along the last axis."""
    return 0.5 * (edges[..., 1:] + edges[..., :-1])


def total_energy(maps: Array) -> Array:
    """Deposited energy of each shower, ``(n,)`` GeV (the sum of its voxels)."""
    return _check_maps(maps).sum(-1).sum(-1)


def energy_per_slice(maps: Array) -> Array:
    """Longitudinal profile: energy per depth slice, ``(n, n_depth)`` GeV."""
    return _check_maps(maps).sum(-1)


def energy_per_ring(maps: Array) -> Array:
    """Lateral profile: energy per radial ring, ``(n, n_radial)`` GeV."""
    return _check_maps(maps).sum(-2)


def _weighted_moments(profile: Array, centres: Array) -> tuple[Array, Array]:
    """Energy-weighted mean and standard deviation of ``centres`` under ``profile`` (per shower)."""
    total = profile.sum(-1)
    w = profile / _clip(total, _EMPTY_GEV)[:, None]
    mean = (w * centres).sum(-1)
    second = (w * centres * centres).sum(-1)
    return mean, _clip(second - mean * mean, 0.0) ** 0.5


def energy_weighted_radius(maps: Array, radial_edges_cm: Array) -> Array:
    """<r> = sum_ij E_ij r_j / sum_ij E_ij, ``(n,)`` cm (r_j the ring centre)."""
    maps = _check_maps(maps)
    edges = _edges_like(radial_edges_cm, maps, maps.shape[2], "radial_edges_cm")
    return _weighted_moments(maps.sum(-2), bin_centres(edges))[0]


def shower_dispersion(maps: Array, radial_edges_cm: Array) -> Array:
    """Energy-weighted radial spread sqrt(<r^2> - <r>^2), ``(n,)`` cm."""
    maps = _check_maps(maps)
    edges = _edges_like(radial_edges_cm, maps, maps.shape[2], "radial_edges_cm")
    return _weighted_moments(maps.sum(-2), bin_centres(edges))[1]


def longitudinal_centre(maps: Array, depth_edges_cm: Array) -> Array:
    """Energy-weighted mean depth <z> from the front face, ``(n,)`` cm (z_i the slice centre)."""
    maps = _check_maps(maps)
    edges = _edges_like(depth_edges_cm, maps, maps.shape[1], "depth_edges_cm")
    return _weighted_moments(maps.sum(-1), bin_centres(edges))[0]


def longitudinal_spread(maps: Array, depth_edges_cm: Array) -> Array:
    """Energy-weighted depth spread sqrt(<z^2> - <z>^2), ``(n,)`` cm."""
    maps = _check_maps(maps)
    edges = _edges_like(depth_edges_cm, maps, maps.shape[1], "depth_edges_cm")
    return _weighted_moments(maps.sum(-1), bin_centres(edges))[1]


def _fraction_inside(profile: Array, edges: Array, limit: Array, squared: bool) -> Array:
    """Share of ``profile`` below ``limit``, interpolating within the bin linearly in x (or x^2)."""
    lo, hi = edges[:, :-1], edges[:, 1:]
    if squared:
        lo, hi, limit = lo * lo, hi * hi, limit * limit
    part = _clip((limit - lo) / _clip(hi - lo, 1e-300), 0.0, 1.0)
    total = profile.sum(-1)
    return (profile * part).sum(-1) / _clip(total, _EMPTY_GEV)


def lateral_containment(maps: Array, radial_edges_cm: Array, radius_cm: Array) -> Array:
    """Fraction of each shower's energy within ``radius_cm`` of the axis (scalar or ``(n,)``), ``(n,)``."""
    maps = _check_maps(maps)
    edges = _edges_like(radial_edges_cm, maps, maps.shape[2], "radial_edges_cm")
    return _fraction_inside(maps.sum(-2), edges, _per_shower(radius_cm, maps), squared=True)


def longitudinal_containment(maps: Array, depth_edges_cm: Array, depth_cm: Array) -> Array:
    """Fraction of each shower's energy before ``depth_cm`` from the front face (scalar or ``(n,)``), ``(n,)``."""
    maps = _check_maps(maps)
    edges = _edges_like(depth_edges_cm, maps, maps.shape[1], "depth_edges_cm")
    return _fraction_inside(maps.sum(-1), edges, _per_shower(depth_cm, maps), squared=False)


def high_level_observables(maps: Array, depth_edges_cm: Array, radial_edges_cm: Array) -> dict[str, Array]:
    """The per-shower observables named in `OBSERVABLES`, each ``(n,)``."""
    maps = _check_maps(maps)
    d_edges = _edges_like(depth_edges_cm, maps, maps.shape[1], "depth_edges_cm")
    r_edges = _edges_like(radial_edges_cm, maps, maps.shape[2], "radial_edges_cm")
    r_mean, r_spread = _weighted_moments(maps.sum(-2), bin_centres(r_edges))
    z_mean, z_spread = _weighted_moments(maps.sum(-1), bin_centres(d_edges))
    return {
        "total_energy_gev": maps.sum(-1).sum(-1),
        "radius_cm": r_mean,
        "dispersion_cm": r_spread,
        "long_centre_cm": z_mean,
        "long_spread_cm": z_spread,
    }


def dataset_observables(dataset: Any, maps: Array | None = None, *, per_slice: bool = False) -> dict[str, np.ndarray]:
    """`high_level_observables` of a `ShowerDataset` (or of ``maps`` generated for its conditions),
    plus ``energy_ratio`` (deposit / beam energy) when the set has an ``energy_gev`` column and,
    with ``per_slice``, the energy of every depth slice as ``slice_<k>_energy_gev``."""
    m = dataset.maps if maps is None else maps
    if tuple(m.shape) != tuple(dataset.maps.shape):
        raise DataError(f"maps: expected shape {tuple(dataset.maps.shape)} (one per shower of the set), got {tuple(m.shape)}")
    out: Mapping[str, Array] = high_level_observables(m, dataset.depth_edges_cm(), dataset.radial_edges_cm())
    result = {k: np.asarray(v.detach().cpu().numpy() if _is_torch(v) else v, dtype=np.float64) for k, v in out.items()}
    if "energy_gev" in dataset.condition_names:
        result["energy_ratio"] = result["total_energy_gev"] / dataset.column("energy_gev")
    if per_slice:
        slices = energy_per_slice(m)
        slices = np.asarray(slices.detach().cpu().numpy() if _is_torch(slices) else slices, dtype=np.float64)
        width = len(str(slices.shape[1] - 1))
        for k in range(slices.shape[1]):
            result[f"slice_{k:0{width}d}_energy_gev"] = slices[:, k]
    return result
