"""`FastShowerSimulator`: a stochastic, vectorized shower simulator grounded in PDG/GFlash physics.

Model, per event (details in ``docs/physics.md``):

* **Depth** accumulates layer by layer in the natural unit of each shower component:
  radiation lengths X0 for electromagnetic showers, nuclear interaction lengths for the
  hadronic component, pion interaction lengths for the first inelastic interaction.
* **Energy sharing in mixed stacks.** The profile gives the fraction w_s of the shower's
  track length in each segment s; a segment absorbs energy in proportion to its own
  ionization per unit of depth, eps_s = X0_s dE/dx_s (EM) or lambda_s dE/dx_s (hadronic),
  relative to the mean of its neighbourhood (+-1 X0): E_s ~ E w_s eps_s / <eps>_s, scaled so
  that the event deposits E (1 - f_leak), f_leak the profile past the back. A thin low-Z
  layer inside a high-Z absorber therefore samples the shower (it receives the track flux
  times its own dE/dx) instead of absorbing it; a thick block keeps its own energy whatever
  lies behind it; energy is conserved.
* **Sampling fluctuations**: the shower's energy is shared between layers with Gamma
  fluctuations of variance mu q, q = K dE/dx min(d, X0), then rescaled to conserve the
  total (`sample_sampling_fluctuations`); K is calibrated to the PDG sampling term
  2.7% sqrt(d[mm]/f_samp)/sqrt(E). A homogeneous block fluctuates only through the shower
  shape and leakage, however it is segmented.
* **Lateral leakage** through the square face (area-equivalent circle), GFlash radial
  profile for EM, a Cauchy profile with 95% within lambda_I for the hadronic part.
* **Pions**: minimum-ionizing loss (Moyal-distributed) until an exponential first
  interaction depth; punch-through with probability exp(-sum d/lambda_pi); then a shower with
  a fluctuating EM fraction (Groom) and a fluctuating invisible share of the hadronic part, part of
  which is deposited at the interaction point (nuclear fragments).
* **Backward energy (albedo)**: every shower sends part of its energy back against the beam,
  absorbed upstream or lost through the front face (`detopt.simulation.albedo`); the first X0 of an
  EM shower carries the ionization of its first charged tracks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detopt.detector.calorimeter import SamplingCalorimeter
from detopt.errors import ConfigError
from detopt.simulation import albedo
from detopt.simulation import em_shower as em
from detopt.simulation import hadron_shower as had
from detopt.simulation.events import EventBatch
from detopt.simulation.particles import EM_PARTICLES, PARTICLES, parse_particles
from detopt.simulation.voxels import VoxelGrid, equivalent_radius_cm

#: K in q = K dE/dx min(d, X0): with it, Pb/polystyrene, Fe/polystyrene and Pb/LAr sandwiches show the
#: PDG sampling term 2.7% sqrt(d[mm]/f_samp)/sqrt(E[GeV]) (review "Calorimetry") within about 15%
#: (measured by docs/scripts/physics_validation.py).
SAMPLING_QUANTUM_FACTOR = 2.2
#: Thickness (X0) beyond which a layer's sampling quantum falls as (d / onset)^-THICK_QUANTUM_POWER: in a
#: layer many X0 thick most of the energy is deposited by particles born inside it, whose share fluctuates
#: through the shower shape (modelled apart), not through track crossings. Above 2 X0 so that the sampling
#: terms of the PDG sandwiches (absorbers up to ~1.8 X0) are untouched.
THICK_QUANTUM_ONSET_X0 = 3.0
#: Power of that fall (0 = none, the value before the broad calibration); fitted to Geant4's widths of thick
#: crystals (docs/scripts/calibrate_fastsim.py).
THICK_QUANTUM_POWER = 1.069
#: Depth window (X0) over which the material of an EM shower is averaged (shower max + 95% containment).
EM_MATERIAL_WINDOW_X0 = 20.0
#: Backward window (X0) over which the Moliere radius seen by a segment is averaged.
MOLIERE_WINDOW_X0 = 5.0
#: Half-width (X0) of the neighbourhood whose mean X0 dE/dx is the reference a segment's EM share is
#: measured against: a thin layer inside an absorber samples relative to the absorber, a thick block
#: relative to itself (so material downstream of a block does not draw energy out of it).
EM_SHARING_WINDOW_X0 = 1.0
#: The same for the hadronic component, in lambda_I.
HADRON_SHARING_WINDOW_LAMBDA = 0.1
#: Backward window (lambda_I) over which the interaction length setting the hadronic width is averaged.
HADRON_WIDTH_WINDOW_LAMBDA = 1.0
#: Events simulated per vectorized chunk (each chunk has its own child seed); bounds the memory of voxel maps.
CHUNK_EVENTS = 8192


def sampling_quantum_gev(dedx_mev_cm: np.ndarray, thickness_cm: np.ndarray, x0_cm: np.ndarray) -> np.ndarray:
    """Sampling quantum q = K dE/dx min(d, X0) of each layer (GeV), reduced for layers thicker than
    THICK_QUANTUM_ONSET_X0 by (d / (onset X0))^-THICK_QUANTUM_POWER."""
    thick = np.maximum(thickness_cm / (THICK_QUANTUM_ONSET_X0 * x0_cm), 1.0) ** -THICK_QUANTUM_POWER
    return SAMPLING_QUANTUM_FACTOR * dedx_mev_cm * np.minimum(thickness_cm, x0_cm) * thick * 1e-3


def _cumulative(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.diff(edges) * values)])


def _window_mean(edges: np.ndarray, cum: np.ndarray, last: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of a piecewise-constant property over [a, b] in depth, extended past the end with ``last``."""
    end = edges[-1]

    def integral(x: np.ndarray) -> np.ndarray:
        inside = np.interp(np.minimum(x, end), edges, cum)
        return inside + np.maximum(x - end, 0.0) * last

    return (integral(b) - integral(a)) / np.maximum(b - a, 1e-12)


@dataclass(frozen=True)
class _Stack:
    """Precomputed geometry: segments (layers cut at voxel-slice edges) and cumulative depths."""

    edges_cm: np.ndarray
    t_edges: np.ndarray
    l_edges: np.ndarray
    pi_edges: np.ndarray
    seg_layer: np.ndarray
    seg_slice: np.ndarray | None
    eps_em: np.ndarray
    eps_had: np.ndarray
    eps_em_local: np.ndarray
    eps_had_local: np.ndarray
    seg_rm_cm: np.ndarray
    seg_lambda_cm: np.ndarray
    seg_z: np.ndarray
    cum_ec: np.ndarray
    cum_z: np.ndarray
    last_ec: float
    last_z: float
    seg_dedx: np.ndarray
    seg_xi_per_cm: np.ndarray
    layer_quantum_gev: np.ndarray
    r_eq_cm: float
    em_albedo_c: np.ndarray
    em_albedo: tuple[np.ndarray, np.ndarray]
    hadron_albedo_c: np.ndarray
    hadron_albedo: tuple[np.ndarray, np.ndarray]

    @classmethod
    def build(cls, det: SamplingCalorimeter, grid: VoxelGrid | None) -> "_Stack":
        layer_edges = det.boundaries_cm
        edges = layer_edges
        if grid is not None:
            edges = np.unique(np.concatenate([layer_edges, grid.depth_edges_cm(det.depth_cm)]))
            edges = edges[np.concatenate([[True], np.diff(edges) > 1e-9 * max(det.depth_cm, 1.0)])]
            edges[-1] = layer_edges[-1]
        mids = 0.5 * (edges[:-1] + edges[1:])
        seg_layer = np.clip(np.searchsorted(layer_edges, mids) - 1, 0, len(det.layers) - 1)
        mats = [det.layers[i].material for i in seg_layer]
        x0 = np.array([m.radiation_length_cm for m in mats])
        lam = np.array([m.nuclear_interaction_length_cm for m in mats])
        lam_pi = np.array([m.pion_interaction_length_cm for m in mats])
        dedx = np.array([m.dedx_min_mev_cm for m in mats])
        rm = np.array([m.moliere_radius_cm for m in mats])
        z = np.array([m.z_eff for m in mats])
        ec = np.array([m.critical_energy_mev for m in mats])
        dz = np.diff(edges)
        t_edges = np.concatenate([[0.0], np.cumsum(dz / x0)])
        l_edges = np.concatenate([[0.0], np.cumsum(dz / lam)])
        pi_edges = np.concatenate([[0.0], np.cumsum(dz / lam_pi)])
        t_mid = 0.5 * (t_edges[:-1] + t_edges[1:])
        l_mid = 0.5 * (l_edges[:-1] + l_edges[1:])
        eps_em, eps_had = x0 * dedx, lam * dedx
        eps_em_local = _window_mean(
            t_edges, _cumulative(t_edges, eps_em), eps_em[-1],
            np.maximum(t_mid - EM_SHARING_WINDOW_X0, 0.0), np.minimum(t_mid + EM_SHARING_WINDOW_X0, t_edges[-1]),
        )
        eps_had_local = _window_mean(
            l_edges, _cumulative(l_edges, eps_had), eps_had[-1],
            np.maximum(l_mid - HADRON_SHARING_WINDOW_LAMBDA, 0.0),
            np.minimum(l_mid + HADRON_SHARING_WINDOW_LAMBDA, l_edges[-1]),
        )
        cum_rm = _cumulative(t_edges, rm)
        seg_rm = _window_mean(t_edges, cum_rm, rm[-1], np.maximum(t_mid - MOLIERE_WINDOW_X0, 0.0), t_mid + 1e-9)
        cum_lam = _cumulative(l_edges, lam)
        seg_lam = _window_mean(
            l_edges, cum_lam, lam[-1], np.maximum(l_mid - HADRON_WIDTH_WINDOW_LAMBDA, 0.0), l_mid + 1e-9
        )
        seg_slice = None
        if grid is not None:
            slice_edges = grid.depth_edges_cm(det.depth_cm)
            seg_slice = np.clip(np.searchsorted(slice_edges, mids) - 1, 0, grid.n_depth - 1)
        lm = [layer.material for layer in det.layers]
        thick = det.thicknesses_cm
        lx0 = np.array([m.radiation_length_cm for m in lm])
        ldedx = np.array([m.dedx_min_mev_cm for m in lm])
        xi = np.array([had.LANDAU_XI_MEV_CM2_G * m.z_over_a * m.density_g_cm3 for m in mats])
        rho = np.array([m.density_g_cm3 for m in mats])
        em_lambda = albedo.em_attenuation_g_cm2(z)
        had_lambda = albedo.HADRON_ALBEDO_ATTENUATION_G_CM2
        return cls(
            edges_cm=edges, t_edges=t_edges, l_edges=l_edges, pi_edges=pi_edges, seg_layer=seg_layer,
            seg_slice=seg_slice, eps_em=eps_em, eps_had=eps_had, eps_em_local=eps_em_local,
            eps_had_local=eps_had_local, seg_rm_cm=seg_rm, seg_lambda_cm=seg_lam,
            seg_z=z, cum_ec=_cumulative(t_edges, ec), cum_z=_cumulative(t_edges, z), last_ec=float(ec[-1]),
            last_z=float(z[-1]), seg_dedx=dedx, seg_xi_per_cm=xi,
            layer_quantum_gev=sampling_quantum_gev(ldedx, thick, lx0),
            r_eq_cm=equivalent_radius_cm(det.transverse_size_cm),
            em_albedo_c=x0 * rho / em_lambda,
            em_albedo=albedo.front_transfer(dz * rho / em_lambda),
            hadron_albedo_c=lam * rho / had_lambda,
            hadron_albedo=albedo.front_transfer(dz * rho / had_lambda),
        )

    @property
    def n_segments(self) -> int:
        return int(self.seg_layer.shape[0])

    def at_depth(self, edges_from: np.ndarray, edges_to: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Map depth ``x`` from one cumulative scale to another, linear within segments and past the end."""
        inside = np.interp(np.minimum(x, edges_from[-1]), edges_from, edges_to)
        slope = (edges_to[-1] - edges_to[-2]) / max(edges_from[-1] - edges_from[-2], 1e-12)
        return inside + np.maximum(x - edges_from[-1], 0.0) * slope


@dataclass(frozen=True)
class _Component:
    """Mean energy of one shower component per segment, ``(m, S)`` GeV, and its radial shape."""

    segment_gev: np.ndarray
    ring_fractions: np.ndarray | None


def _sum_by(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """Sum the last axis of ``values`` into ``n`` groups given by ``index``."""
    return values @ _onehot(index, n)


class FastShowerSimulator:
    """The built-in simulator (see the module docstring). Satisfies the `Simulator` protocol.

    ``voxels``: record an energy map on this grid for every event (depth slices x radial rings).
    """

    name = "fastsim"

    def __init__(self, voxels: VoxelGrid | None = None) -> None:
        self.voxels = voxels

    def simulate(
        self,
        detector: SamplingCalorimeter,
        n_events: int,
        particles: Sequence[str] | str = ("gamma", "pi+"),
        energy_range: tuple[float, float] = (1.0, 20.0),
        seed: int = 0,
    ) -> EventBatch:
        n_events, species, (e_lo, e_hi), seed = _validate(n_events, particles, energy_range, seed)
        stack = _Stack.build(detector, self.voxels)
        radial_edges = None if self.voxels is None else self.voxels.radial_edges_cm(detector.transverse_size_cm)
        chunks = []
        n_chunks = math.ceil(n_events / CHUNK_EVENTS)
        for k, child in enumerate(np.random.SeedSequence(seed).spawn(n_chunks)):
            m = min(CHUNK_EVENTS, n_events - k * CHUNK_EVENTS)
            chunks.append(self._simulate_chunk(stack, detector, m, species, e_lo, e_hi, child, radial_edges))
        batch = EventBatch.concatenate(chunks)
        meta = {
            "simulator": self.name, "seed": seed, "particles": list(species), "energy_range_gev": [e_lo, e_hi],
            "detector": detector.describe(),
            "voxel_grid": None if self.voxels is None else self.voxels.model_dump(),
        }
        return EventBatch(
            particle=batch.particle, energy=batch.energy, deposits=batch.deposits,
            first_interaction_cm=batch.first_interaction_cm, layer_names=batch.layer_names, active=batch.active,
            voxels=batch.voxels, metadata=meta,
        )

    # -- one chunk -------------------------------------------------------------------------
    def _simulate_chunk(
        self, stack: _Stack, det: SamplingCalorimeter, m: int, species: tuple[str, ...], e_lo: float, e_hi: float,
        seq: np.random.SeedSequence, radial_edges: np.ndarray | None,
    ) -> EventBatch:
        r_beam, r_em, r_had, r_noise, r_vox = (np.random.default_rng(s) for s in seq.spawn(5))
        codes = np.array([PARTICLES.index(p) for p in species], dtype=np.int8)
        particle = codes[r_beam.integers(0, len(codes), size=m)]
        energy = r_beam.uniform(e_lo, e_hi, size=m)
        n_layers = len(det.layers)
        S = stack.n_segments
        shower_seg = np.zeros((m, S))
        mip_seg = np.zeros((m, S))
        first_int = np.full(m, np.nan)
        rings = None if radial_edges is None else np.zeros((m, S, len(radial_edges) - 1))

        is_em = np.isin(particle, [PARTICLES.index(p) for p in EM_PARTICLES])
        if is_em.any():
            idx = np.flatnonzero(is_em)
            photon = particle[idx] == PARTICLES.index("gamma")
            e = energy[idx]
            t0 = np.where(photon, r_em.exponential(em.PHOTON_CONVERSION_X0, size=idx.size), 0.0)
            tracks = np.where(photon, em.START_TRACKS_PHOTON, em.START_TRACKS_ELECTRON)
            comp = _em_component(stack, e, e, t0, r_em, radial_edges, start_tracks=tracks)
            shower_seg[idx] += comp.segment_gev
            if rings is not None:
                rings[idx] += comp.segment_gev[:, :, None] * comp.ring_fractions

        is_pi = particle == PARTICLES.index("pi+")
        if is_pi.any():
            idx = np.flatnonzero(is_pi)
            seg, mip, z_int, ring_part = _pion_showers(stack, energy[idx], r_had, radial_edges)
            shower_seg[idx] += seg
            mip_seg[idx] = mip
            first_int[idx] = z_int
            if rings is not None:
                rings[idx] += ring_part

        voxels = None
        if rings is None:
            shower_layer = sample_sampling_fluctuations(
                _sum_by(shower_seg, stack.seg_layer, n_layers), stack.layer_quantum_gev, r_noise
            )
        else:
            pieces = sample_sampling_fluctuations(rings, stack.layer_quantum_gev[stack.seg_layer][:, None], r_noise)
            shower_layer = _sum_by(pieces.sum(axis=2), stack.seg_layer, n_layers)
            pieces[:, :, 0] += mip_seg
            assert stack.seg_slice is not None and self.voxels is not None
            by_slice = np.swapaxes(pieces, 1, 2) @ _onehot(stack.seg_slice, self.voxels.n_depth)
            voxels = np.swapaxes(by_slice, 1, 2).astype(np.float32)
        deposits = shower_layer + _sum_by(mip_seg, stack.seg_layer, n_layers)
        return EventBatch(
            particle=particle, energy=energy, deposits=deposits, first_interaction_cm=first_int,
            layer_names=det.layer_names, active=tuple(bool(a) for a in det.active_mask), voxels=voxels,
        )


def _share_by_ionization(
    energy: np.ndarray, w: np.ndarray, beyond: np.ndarray, eps: np.ndarray, eps_local: np.ndarray
) -> np.ndarray:
    """Energy per segment: the track length crossing it (w_s, the profile's share) times its own
    ionization per unit depth relative to its neighbourhood's (eps_s / eps_local_s), normalized so
    that the event deposits E (1 - f_leak), f_leak the part of the profile past the last layer."""
    weighted = w * (eps / eps_local)[None, :]
    norm = weighted.sum(axis=1)
    return (energy * (1.0 - beyond) / np.maximum(norm, 1e-300))[:, None] * weighted


def _em_component(
    stack: _Stack, deposit_energy: np.ndarray, profile_energy: np.ndarray, t0: np.ndarray,
    rng: np.random.Generator, radial_edges: np.ndarray | None, radial_scale: float = 1.0,
    start_tracks: np.ndarray | float = em.START_TRACKS_PHOTON,
) -> _Component:
    """EM shower(s) of total energy ``deposit_energy`` starting at depth ``t0`` (X0), with the shape of a
    shower of ``profile_energy`` (the two photons of a pi0 develop like one photon of half the energy),
    its radii widened by ``radial_scale``."""
    window_end = t0 + EM_MATERIAL_WINDOW_X0
    ec = _window_mean(stack.t_edges, stack.cum_ec, stack.last_ec, t0, window_end)
    z = _window_mean(stack.t_edges, stack.cum_z, stack.last_z, t0, window_end)
    alpha, beta = em.sample_longitudinal_shape(profile_energy, ec, z, rng)
    depth = stack.t_edges[None, :] - t0[:, None]
    cdf = em.gamma_profile_cdf(alpha[:, None], beta[:, None], depth)
    w = np.diff(cdf, axis=1)
    beyond = 1.0 - cdf[:, -1]
    start = em.start_track_weights(depth, ec, deposit_energy, start_tracks)
    w = w * (1.0 - start.sum(axis=1))[:, None] + start
    seg = _share_by_ionization(deposit_energy, w, beyond, stack.eps_em, stack.eps_em_local)
    # Energy-weighted mean depth inside each segment, for the radial shape there.
    cdf1 = em.gamma_profile_cdf(alpha[:, None] + 1.0, beta[:, None], depth)
    mean_t = np.where(
        w > 1e-12, (alpha / beta)[:, None] * np.diff(cdf1, axis=1) / np.maximum(w, 1e-300),
        0.5 * (depth[:, :-1] + depth[:, 1:]),
    )
    t_max = (alpha - 1.0) / beta
    tau = np.maximum(mean_t, 0.0) / t_max[:, None]
    r_core, r_tail, p_core = em.radial_parameters(profile_energy[:, None], stack.seg_z[None, :], tau, radial_scale)
    rm = stack.seg_rm_cm[None, :]
    seg = seg * em.two_component_containment(stack.r_eq_cm, r_core * rm, r_tail * rm, p_core)
    arriving = albedo.gamma_front_arrival(alpha, beta, depth, stack.em_albedo_c)
    arriving = arriving * albedo.em_albedo_energy(deposit_energy)[:, None]
    kept, added, scale = albedo.move_backward(seg, arriving, stack.em_albedo, rng)
    seg_kept = seg * kept
    rings = None
    if radial_edges is not None:
        f = em.two_component_containment(
            radial_edges[None, None, :], (r_core * rm)[..., None], (r_tail * rm)[..., None], p_core[..., None]
        )
        f = np.diff(f, axis=2)
        f = f / np.maximum(f.sum(axis=2, keepdims=True), 1e-300)
        rings = _with_albedo_rings(seg_kept, f, added, radial_edges, stack)
    return _Component((seg_kept + added) * scale[:, None], rings)


def _with_albedo_rings(
    kept_gev: np.ndarray, fractions: np.ndarray, added_gev: np.ndarray, radial_edges: np.ndarray, stack: _Stack
) -> np.ndarray:
    """Ring fractions per segment once backward energy is added: it spreads uniformly over the face (diffuse)."""
    r = np.minimum(radial_edges, stack.r_eq_cm)
    area = np.diff(r * r)
    area = area / max(float(area.sum()), 1e-300)
    energy = kept_gev[:, :, None] * fractions + added_gev[:, :, None] * area[None, None, :]
    return energy / np.maximum(energy.sum(axis=2, keepdims=True), 1e-300)


def _pion_showers(
    stack: _Stack, energy: np.ndarray, rng: np.random.Generator, radial_edges: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Shower part and MIP part per segment (GeV), first-interaction depth (cm, NaN if none), rings."""
    m = energy.size
    u = rng.exponential(1.0, size=m)
    interacts = u < stack.pi_edges[-1]
    z_int = np.where(interacts, np.interp(np.minimum(u, stack.pi_edges[-1]), stack.pi_edges, stack.edges_cm), np.inf)
    # Minimum ionization up to the interaction (or through the whole stack), per segment.
    lo, hi = stack.edges_cm[:-1], stack.edges_cm[1:]
    path = np.clip(np.minimum(z_int[:, None], hi[None, :]) - lo[None, :], 0.0, None)
    xi = stack.seg_xi_per_cm[None, :] * path
    mean_loss = had.PION_MEAN_LOSS_OVER_MIN * stack.seg_dedx[None, :] * path
    mip = (mean_loss + xi * (had.moyal(path.shape, rng) - had.MOYAL_MEAN)) * 1e-3
    mip = np.maximum(mip, 0.0)
    mip_total = mip.sum(axis=1)
    stopped = mip_total > energy
    mip[stopped] *= (energy[stopped] / mip_total[stopped])[:, None]
    e_int = np.maximum(energy - mip.sum(axis=1), 0.0)

    f_em = had.sample_beta(had.mean_em_fraction(e_int), had.EM_FRACTION_CONCENTRATION, rng)
    visible = had.sample_beta(np.full(m, had.HADRONIC_VISIBLE_FRACTION), had.HADRONIC_VISIBLE_CONCENTRATION, rng)
    e_em = np.where(interacts, f_em * e_int, 0.0)
    e_had = np.where(interacts, (1.0 - f_em) * e_int * visible, 0.0)
    z_fin = np.where(interacts, z_int, stack.edges_cm[-1])

    t_int = np.interp(z_fin, stack.edges_cm, stack.t_edges)
    t0 = t_int + rng.exponential(em.PHOTON_CONVERSION_X0, size=m)
    em_part = _em_component(
        stack, e_em, np.maximum(0.5 * e_em, 1e-3), t0, rng, radial_edges, had.PION_EM_RADIAL_SCALE
    )

    a, d = had.hadronic_profile_shape(np.maximum(e_int, 1e-3))
    a = a * np.exp(had.HADRONIC_SHAPE_SPREAD * rng.standard_normal(m))
    d = d * np.exp(had.HADRONIC_SHAPE_SPREAD * rng.standard_normal(m))
    l_int = np.interp(z_fin, stack.edges_cm, stack.l_edges)
    cdf = em.gamma_profile_cdf(a[:, None], d[:, None], stack.l_edges[None, :] - l_int[:, None])
    w = np.diff(cdf, axis=1)
    beyond = 1.0 - cdf[:, -1]
    vertex = np.clip(np.searchsorted(stack.edges_cm, z_fin, side="right") - 1, 0, stack.n_segments - 1)
    local = had.HADRONIC_LOCAL_FRACTION * (1.0 - beyond)
    w = w * (1.0 - had.HADRONIC_LOCAL_FRACTION) + local[:, None] * _onehot(vertex, stack.n_segments)
    had_seg = _share_by_ionization(e_had, w, beyond, stack.eps_had, stack.eps_had_local)
    had_seg = had_seg * had.hadronic_response(stack.seg_z)[None, :]
    r0 = had.HADRONIC_RADIUS_LAMBDA * stack.seg_lambda_cm
    had_seg = had_seg * had.cauchy_containment(stack.r_eq_cm, r0)[None, :]
    arriving = albedo.gamma_front_arrival(a, d, stack.l_edges[None, :] - l_int[:, None], stack.hadron_albedo_c)
    arriving = arriving * (albedo.HADRON_ALBEDO_FRACTION * had_seg.sum(axis=1))[:, None]
    kept, added, scale = albedo.move_backward(had_seg, arriving, stack.hadron_albedo, rng)
    had_kept = had_seg * kept
    had_seg = (had_kept + added) * scale[:, None]
    seg = em_part.segment_gev + had_seg
    rings = None
    if radial_edges is not None:
        fh = np.diff(had.cauchy_containment(radial_edges[None, :], r0[:, None]), axis=1)
        fh = fh / np.maximum(fh.sum(axis=1, keepdims=True), 1e-300)
        fh = _with_albedo_rings(had_kept, np.broadcast_to(fh[None], (m, *fh.shape)), added, radial_edges, stack)
        rings = em_part.segment_gev[:, :, None] * em_part.ring_fractions + had_seg[:, :, None] * fh
    return seg, mip, np.where(interacts, z_int, np.nan), rings


def sample_sampling_fluctuations(mean: np.ndarray, quantum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fluctuate how a shower's energy is shared between layers (or voxels), conserving its total.

    Each piece first draws an independent Gamma deposit of mean ``mean`` and variance mean x quantum,
    the statistics of ~mean/quantum independent track crossings (PDG sampling fluctuations); the
    pieces of an event are then scaled to the event's mean total: energy only moves between pieces.
    So a homogeneous block reads the same total however it is cut into layers, a sandwich's active
    share fluctuates with the sampling term, and the deposit never exceeds the beam energy.
    Pieces are summed over every axis but the first; pieces below 1 eV, or with more than 10^7
    quanta, keep their mean.
    """
    quantum = np.broadcast_to(quantum, mean.shape)
    shape = mean / np.maximum(quantum, 1e-300)
    drawn = mean.copy()
    noisy = (mean > 1e-9) & (shape <= 1e7)
    drawn[noisy] = rng.gamma(shape[noisy]) * quantum[noisy]
    axes = tuple(range(1, mean.ndim))
    factor = mean.sum(axis=axes, keepdims=True) / np.maximum(drawn.sum(axis=axes, keepdims=True), 1e-300)
    return drawn * factor


def _onehot(index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((index.shape[0], n))
    out[np.arange(index.shape[0]), index] = 1.0
    return out


def _validate(
    n_events: int, particles: Sequence[str] | str, energy_range: tuple[float, float], seed: int
) -> tuple[int, tuple[str, ...], tuple[float, float], int]:
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events <= 0:
        raise ConfigError("n_events", f"must be a whole number > 0, got {n_events!r}")
    species = parse_particles(particles)
    try:
        lo, hi = (float(x) for x in energy_range)
    except (TypeError, ValueError):
        raise ConfigError("energy_range", f"must be two numbers (min, max) in GeV, got {energy_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo:
        raise ConfigError("energy_range", f"needs 0 < min <= max (GeV, finite), got ({lo}, {hi})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed", f"must be a whole number >= 0, got {seed!r}")
    return int(n_events), species, (lo, hi), int(seed)
