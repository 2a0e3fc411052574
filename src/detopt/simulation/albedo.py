"""Albedo: the energy a shower sends backwards, against the beam.

Soft photons (Compton-scattered and annihilation photons, ~0.2-2 MeV) of an EM shower, and neutrons and
gammas of a hadron shower, travel backwards from where the shower develops. Part of that energy is absorbed
upstream, in layers the forward profile never reaches (a thin scintillator in front of a block reads
several times its MIP signal), the rest leaves through the front face, so even a fully contained photon
shower does not deposit all of its energy and the total fluctuates (a few MeV at a few GeV in Geant4,
docs/geant4.md). Model, per shower: an energy A(E) leaves the shower's own depth profile backwards and is
attenuated exponentially in mass depth with a length Lambda; what passes the front face escapes, in
quanta of ALBEDO_QUANTUM_MEV (a compound-Poisson fluctuation). Backscattered energy of photons of
0.5-3 MeV is attenuated with mu/rho ~ 0.04-0.08 cm^2/g in every material (NIST XCOM), i.e. Lambda
~ 12-25 g/cm^2; MeV neutrons about 30-40 g/cm^2 (total cross sections of a few barn). The amounts are
fitted to Geant4 (docs/scripts/calibrate_fastsim.py).
"""

from __future__ import annotations

import numpy as np

from detopt.simulation.em_shower import gamma_profile_cdf

#: Backward energy of an EM shower of 1 GeV (GeV), A_em(E) = A1 E^p; fitted to Geant4.
EM_ALBEDO_GEV_AT_1GEV = 0.039
#: Exponent p of the EM albedo's energy dependence (backscatter comes from the soft early shower, so it
#: grows more slowly than E); fitted to Geant4.
EM_ALBEDO_EXPONENT = 0.7225
#: Attenuation length of the EM albedo (g/cm^2) in iron-like material, fitted to Geant4 (photons of ~1 MeV alone
#: would give 14-20 g/cm^2, NIST XCOM; harder backscattered photons and electrons lengthen it).
EM_ALBEDO_ATTENUATION_G_CM2 = 37.88
#: Exponent zeta of the material dependence of the EM albedo's attenuation, Lambda (Z / 26)^-zeta: soft photons
#: are absorbed by the photo-effect, whose cross section grows as Z^4-5 (NIST XCOM), so backscattered energy
#: is absorbed sooner in heavy materials (0 = one length for all).
EM_ALBEDO_Z_EXPONENT = 0.1803
#: Fraction of a pion shower's deposit sent backwards (neutrons, gammas); fitted to Geant4.
HADRON_ALBEDO_FRACTION = 0.1043
#: Attenuation length of the hadronic albedo (g/cm^2): MeV neutrons and gammas.
HADRON_ALBEDO_ATTENUATION_G_CM2 = 59.3
#: Mean energy of one escaping albedo quantum (MeV): sets the fluctuation of the escaping energy.
ALBEDO_QUANTUM_MEV = 0.4509


def em_attenuation_g_cm2(z_eff: np.ndarray) -> np.ndarray:
    """Attenuation length of the EM albedo in each material, Lambda (Z / 26)^-zeta (g/cm^2)."""
    return EM_ALBEDO_ATTENUATION_G_CM2 * np.power(np.maximum(z_eff, 1.0) / 26.0, -EM_ALBEDO_Z_EXPONENT)


def front_transfer(optical_thickness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where backward energy crossing each segment's front face ends up: ``(M, escape)``.

    ``optical_thickness``: each segment's mass thickness over its attenuation length.
    ``M[s, j]``: fraction absorbed in segment j < s; ``escape[s]``: fraction leaving through the front
    face of the calorimeter. Each row of M plus escape sums to 1.
    """
    edges = np.concatenate([[0.0], np.cumsum(optical_thickness)])
    lo, hi = edges[:-1], edges[1:]
    front = lo[:, None]
    m = np.exp(-np.clip(front - hi[None, :], 0.0, None)) - np.exp(-np.clip(front - lo[None, :], 0.0, None))
    m = np.where(np.arange(lo.size)[None, :] < np.arange(lo.size)[:, None], m, 0.0)
    return m, np.exp(-lo)


def gamma_front_arrival(
    alpha: np.ndarray, beta: np.ndarray, depth_edges: np.ndarray, attenuation_per_unit: np.ndarray
) -> np.ndarray:
    """Fraction of a Gamma(alpha, beta) source, emitted backwards, that reaches each segment's front face.

    ``depth_edges`` ``(m, S + 1)``: segment edges relative to the shower start, in the profile's unit
    (X0 or lambda_I); ``attenuation_per_unit`` ``(S,)``: c_s, the mass of one unit of depth of segment s
    over the attenuation length. Within segment s, int f(tau) exp(-c (tau - a)) dtau over [a, b] =
    exp(c a) (beta / (beta + c))^alpha [P(alpha, (beta + c) b) - P(alpha, (beta + c) a)], P the
    regularized incomplete gamma function (zero below the start).
    """
    a, b = depth_edges[:, :-1], depth_edges[:, 1:]
    c = attenuation_per_unit[None, :]
    rate = beta[:, None] + c
    p = gamma_profile_cdf(alpha[:, None], rate, b) - gamma_profile_cdf(alpha[:, None], rate, a)
    log_factor = np.minimum(c * a, 700.0) + alpha[:, None] * np.log(beta[:, None] / rate)
    return np.where(p > 0, np.exp(log_factor) * np.maximum(p, 0.0), 0.0)


def move_backward(
    segment_gev: np.ndarray, arriving_gev: np.ndarray, transfer: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move the backward energy ``arriving_gev`` ``(m, S)`` (at each segment's front face) upstream.

    Returns ``(kept, added, scale)``: the new deposit is ``(segment_gev * kept + added) * scale[:, None]``;
    ``kept`` ``(m, S)`` the share of each segment left in place, ``added`` the backward energy absorbed
    upstream, ``scale`` the event's correction for the fluctuation of the escaping energy (in quanta).
    """
    m_front, escape = transfer
    arriving = np.minimum(arriving_gev, 0.5 * segment_gev)
    kept = np.where(segment_gev > 0, 1.0 - arriving / np.maximum(segment_gev, 1e-300), 1.0)
    added = arriving @ m_front
    escape_mean = arriving @ escape
    quantum = ALBEDO_QUANTUM_MEV * 1e-3
    shape = escape_mean / quantum
    drawn = np.where(shape > 1e-9, rng.gamma(np.maximum(shape, 1e-9)) * quantum, 0.0)
    remaining = (segment_gev * kept).sum(axis=1) + added.sum(axis=1)
    scale = np.clip((remaining - (drawn - escape_mean)) / np.maximum(remaining, 1e-300), 0.0, None)
    return kept, added, scale


def em_albedo_energy(energy_gev: np.ndarray) -> np.ndarray:
    """Backward energy (GeV) of an EM shower, A1 E^p, at most 5% of E."""
    e = np.maximum(energy_gev, 1e-6)
    return np.minimum(EM_ALBEDO_GEV_AT_1GEV * e**EM_ALBEDO_EXPONENT, 0.05 * e)
