"""Published formulas behind detopt's substitute Geant4 data files (see `offline_data`).

These replace, approximately, three tables of the official data sets that the physics list of
`Geant4Simulator` opens (docs/geant4.md says what that costs):

* the Seltzer-Berger bremsstrahlung tables ``G4EMLOW/brem_SB/br<Z>``: Tsai's screened
  Bethe-Heitler cross section with the Thomas-Fermi screening functions and the
  Davies-Bethe-Maximon Coulomb correction, the same formula as Geant4's own
  ``G4eBremsstrahlungRelModel`` above 1 GeV (without the LPM effect), so the two models join;
* neutron inelastic, elastic and capture cross sections ``G4PARTICLEXS/neutron/{inel,el,cap}<Z>``:
  the Letaw-Silberberg-Tsao nucleon-nucleus inelastic cross section, a black-nucleus energy
  dependence below 20 MeV, Gammel's n-p cross section for hydrogen, elastic-to-inelastic ratios
  from the PDG collision and interaction lengths, and 1/v capture from thermal cross sections;
* the photo-effect tables come from Geant4's built-in Sandia table (`offline_data`).

All energies in MeV, cross sections in barn. Pure numpy: usable and testable without Geant4.
"""

from __future__ import annotations

import numpy as np

#: Fine-structure constant (CODATA 2018).
ALPHA = 7.2973525693e-3
#: Electron mass in MeV (CODATA 2018).
ELECTRON_MASS_MEV = 0.51099895
#: Classical electron radius squared in millibarn ((2.8179403262e-13 cm)^2 = 7.9407877e-26 cm^2).
ELECTRON_RADIUS_SQ_MB = 79.407877
#: 16/3 alpha r_e^2 in millibarn: the constant of the bremsstrahlung cross section (Tsai, Rev. Mod. Phys. 46 (1974) 815, eq. 3.9).
BREM_CONSTANT_MB = 16.0 / 3.0 * ALPHA * ELECTRON_RADIUS_SQ_MB
#: Reduced neutron wavelength times sqrt(E): lambda-bar = hbar c / sqrt(2 m_n c^2 E) = 4.5487 fm / sqrt(E[MeV]).
NEUTRON_LAMBDA_BAR_FM_SQRT_MEV = 4.5487
#: Nuclear radius constant of the black-nucleus reaction cross section pi (R + lambda-bar)^2, R = r0 A^(1/3)
#: (Blatt & Weisskopf, "Theoretical Nuclear Physics" (1952), ch. VIII); 1.36 fm reproduces 14 MeV
#: non-elastic cross sections of C, Fe and Pb (about 0.55, 1.35, 2.6 b) to about 10%.
NUCLEAR_RADIUS_R0_FM = 1.36
#: Energy (MeV) below which the inelastic and elastic cross sections of A > 1 follow the black-nucleus shape.
LOW_ENERGY_JOIN_MEV = 20.0
#: Thermal neutron energy (MeV) at which capture cross sections are quoted (2200 m/s).
THERMAL_ENERGY_MEV = 2.53e-8
#: fm^2 per barn.
FM2_PER_BARN = 100.0

#: Thermal (2200 m/s) radiative capture cross sections in barn, V. F. Sears, Neutron News 3 (1992) 26
#: (values as commonly tabulated; radiative capture only, so not the (n,alpha)/(n,p) absorption of Li, B, N).
THERMAL_CAPTURE_BARN: dict[int, float] = {
    1: 0.3326, 2: 0.00747, 3: 0.045, 4: 0.0076, 6: 0.0035, 7: 0.075, 8: 0.00019, 9: 0.0096, 10: 0.039,
    11: 0.530, 12: 0.063, 13: 0.231, 14: 0.171, 15: 0.172, 16: 0.53, 17: 33.5, 18: 0.675, 19: 2.1, 20: 0.43,
    22: 6.09, 23: 5.08, 24: 3.05, 25: 13.3, 26: 2.56, 27: 37.18, 28: 4.49, 29: 3.78, 30: 1.11, 31: 2.75,
    32: 2.2, 33: 4.5, 34: 11.7, 35: 6.9, 47: 63.3, 48: 2520.0, 49: 193.8, 50: 0.626, 51: 4.91, 53: 6.15,
    54: 23.9, 55: 29.0, 56: 1.1, 57: 8.97, 64: 49700.0, 73: 20.6, 74: 18.3, 79: 98.65, 80: 372.3, 81: 3.43,
    82: 0.171, 83: 0.0338, 90: 7.37, 92: 7.57,
}
#: Thermal capture cross section (barn) assumed for elements missing above (none of detopt's materials).
DEFAULT_THERMAL_CAPTURE_BARN = 2.0


# -- bremsstrahlung ------------------------------------------------------------------------
def coulomb_correction(z: float) -> float:
    """Davies-Bethe-Maximon Coulomb correction f_c(Z) (Phys. Rev. D 50 (1994) 1254, as in G4Element)."""
    az2 = (ALPHA * z) ** 2
    az4 = az2 * az2
    return (0.0083 * az4 + 0.20206 + 1.0 / (1.0 + az2)) * az2 - (0.0020 * az4 + 0.0369) * az4


def tsai_screening_functions(gamma: np.ndarray, epsilon: np.ndarray) -> tuple[np.ndarray, ...]:
    """Tsai's fits to the Thomas-Fermi screening functions phi1, phi1-phi2, psi1, psi1-psi2 (Tsai 1974, eqs. 3.38-3.41)."""
    g2 = gamma * gamma
    phi1 = 16.863 - 2.0 * np.log1p(0.311877 * g2) + 2.4 * np.exp(-0.9 * gamma) + 1.6 * np.exp(-1.5 * gamma)
    phi1m2 = 2.0 / (3.0 + 19.5 * gamma + 18.0 * g2)
    e2 = epsilon * epsilon
    psi1 = 24.34 - 2.0 * np.log1p(13.111641 * e2) + 2.8 * np.exp(-8.0 * epsilon) + 1.2 * np.exp(-29.2 * epsilon)
    psi1m2 = 2.0 / (3.0 + 120.0 * epsilon + 1200.0 * e2)
    return phi1, phi1m2, psi1, psi1m2


def bremsstrahlung_scaled_dcs(z: int, kinetic_mev: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Scaled bremsstrahlung cross section chi = (beta^2 / Z^2) k dsigma/dk in mb (Tsai 1974, eq. 3.82).

    ``kappa`` = k / T, the photon energy over the electron's kinetic energy (the variables of the
    Seltzer-Berger tables). Screened Bethe-Heitler with nuclear and atomic-electron terms and the
    Coulomb correction; accurate to a few % above ~50 MeV, approximate (Born approximation) below.
    """
    t = np.asarray(kinetic_mev, dtype=float)
    kap = np.asarray(kappa, dtype=float)
    e_tot = t + ELECTRON_MASS_MEV
    k = kap * t
    y = k / e_tot
    z13 = z ** (1.0 / 3.0)
    log_z = np.log(z)
    fz = log_z / 3.0 + coulomb_correction(z)
    dum1 = y / (e_tot - k)
    gamma = dum1 * 100.0 * ELECTRON_MASS_MEV / z13
    epsilon = dum1 * 100.0 * ELECTRON_MASS_MEV / (z13 * z13)
    phi1, phi1m2, psi1, psi1m2 = tsai_screening_functions(gamma, epsilon)
    dum0 = 1.0 - y + 0.75 * y * y
    dxs = dum0 * ((0.25 * phi1 - fz) + (0.25 * psi1 - 2.0 * log_z / 3.0) / z) + 0.125 * (1.0 - y) * (phi1m2 + psi1m2 / z)
    beta2 = t * (t + 2.0 * ELECTRON_MASS_MEV) / (e_tot * e_tot)
    return np.maximum(beta2 * BREM_CONSTANT_MB * dxs, 0.0)


# -- neutron cross sections ----------------------------------------------------------------
def letaw_inelastic_mb(a: float, kinetic_mev: np.ndarray) -> np.ndarray:
    """Nucleon-nucleus inelastic cross section (mb), Letaw, Silberberg & Tsao, ApJS 51 (1983) 271, eqs. 3-4.

    sigma = 45 A^0.7 [1 + 0.016 sin(5.3 - 2.63 ln A)] [1 - 0.62 exp(-E/200) sin(10.9 E^-0.28)], E in MeV.
    """
    e = np.maximum(np.asarray(kinetic_mev, dtype=float), 1e-3)
    high = 45.0 * a**0.7 * (1.0 + 0.016 * np.sin(5.3 - 2.63 * np.log(a)))
    return high * (1.0 - 0.62 * np.exp(-e / 200.0) * np.sin(10.9 * e**-0.28))


def black_nucleus_reaction_barn(a: float, kinetic_mev: np.ndarray) -> np.ndarray:
    """Reaction cross section of a black nucleus, pi (R + lambda-bar)^2 in barn (Blatt & Weisskopf ch. VIII)."""
    lam = NEUTRON_LAMBDA_BAR_FM_SQRT_MEV / np.sqrt(np.asarray(kinetic_mev, dtype=float))
    r = NUCLEAR_RADIUS_R0_FM * a ** (1.0 / 3.0)
    return np.pi * (r + lam) ** 2 / FM2_PER_BARN


def elastic_over_inelastic(a: float) -> float:
    """High-energy sigma_el / sigma_inel = lambda_I / lambda_T - 1, fitted as 0.214 + 0.0945 ln A to the
    PDG nuclear collision and interaction lengths of C, Al, Fe, Cu, W, Pb (within 5%)."""
    return 0.214 + 0.0945 * float(np.log(a))


def gammel_np_total_barn(kinetic_mev: np.ndarray) -> np.ndarray:
    """Neutron-proton total (= elastic) cross section below ~30 MeV, barn (Gammel, in "Fast Neutron
    Physics" II, Marion & Fowler eds., 1963): 3 pi / (1.206 E + (-1.86 + 0.09415 E + 0.0001306 E^2)^2)
    + pi / (1.206 E + (0.4223 + 0.13 E)^2), E in MeV; 20.4 b at thermal energies."""
    e = np.asarray(kinetic_mev, dtype=float)
    return 3.0 * np.pi / (1.206 * e + (-1.86 + 0.09415 * e + 1.306e-4 * e * e) ** 2) + np.pi / (
        1.206 * e + (0.4223 + 0.13 * e) ** 2
    )


def np_cross_sections_mb(kinetic_mev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total, elastic) neutron-proton cross sections in mb above ~20 MeV, from the parametrization of
    Geant4's G4HadronNucleonXsc::HadronNucleonXscNS (n on p), held constant above 10 GeV/c."""
    e = np.asarray(kinetic_mev, dtype=float)
    m = 939.565
    p = np.minimum(np.sqrt(e * (e + 2.0 * m)) * 1e-3, 10.0)  # GeV/c
    logp = np.log(p)
    tot = np.where(
        p < 0.8, 33.0 + 30.0 * np.log(p / 1.3) ** 4,
        np.where(p < 1.4, 33.0 + 30.0 * np.log(p / 0.95) ** 2, 33.3 + 20.8 * (p * p - 1.35) / (p**2.5 + 0.95)),
    )
    el = np.where(
        p < 0.8, tot,
        np.where(p < 1.4, 6.0 + 52.0 / (np.log(0.511 / p) ** 2 + 1.6), 6.0 + 20.0 / ((logp - 0.182) ** 2 + 1.0)),
    )
    return tot, np.minimum(el, tot)


def neutron_cross_sections_barn(z: int, a: float, kinetic_mev: np.ndarray) -> dict[str, np.ndarray]:
    """Substitute neutron cross sections {"inel", "el", "cap"} in barn of element ``z`` (mean mass number ``a``).

    A > 1: inelastic = Letaw above 20 MeV; below, flat at the 20 MeV value (non-elastic cross sections
    of medium and heavy nuclei are nearly flat from a few MeV to 20 MeV) times a threshold factor
    1 - exp(-(E / E_th)^2) (E_th = 1 MeV for A > 20, 4 MeV otherwise: the first excited levels).
    Elastic = (PDG ratio) x inelastic above 20 MeV; below, the black-nucleus shape pi (R + lambda-bar)^2
    joined at 20 MeV and capped at the potential-scattering limit 4 pi R^2. Hydrogen: Gammel's n-p cross section
    below 20 MeV, Geant4's n-p parametrization above (blended at 20 MeV), inelastic = total - elastic.
    Capture: 1/v law from the thermal value (Geant4 itself sets it to 0 above 20 MeV).
    """
    e = np.asarray(kinetic_mev, dtype=float)
    join = LOW_ENERGY_JOIN_MEV
    sigma_th = THERMAL_CAPTURE_BARN.get(z, DEFAULT_THERMAL_CAPTURE_BARN)
    cap = sigma_th * np.sqrt(THERMAL_ENERGY_MEV / e)
    if z == 1:
        low = gammel_np_total_barn(e)
        tot_hi, el_hi = np_cross_sections_mb(np.maximum(e, join))
        _, el_j = np_cross_sections_mb(np.array([join]))
        ratio = float(gammel_np_total_barn(np.array(join)) / (el_j[0] * 1e-3))
        blend = 1.0 + (ratio - 1.0) * join / np.maximum(e, join)
        el = np.where(e < join, low, el_hi * 1e-3 * blend)
        inel = np.where(e < join, 0.0, (tot_hi - el_hi) * 1e-3)
        return {"inel": inel, "el": el, "cap": cap}
    inel_join = float(letaw_inelastic_mb(a, np.array(join))) * 1e-3
    bn = black_nucleus_reaction_barn(a, e) / float(black_nucleus_reaction_barn(a, np.array(join)))
    e_th = 1.0 if a > 20 else 4.0
    threshold = -np.expm1(-((e / e_th) ** 2))
    inel = np.where(e < join, inel_join * threshold, letaw_inelastic_mb(a, np.maximum(e, join)) * 1e-3)
    r_fm = NUCLEAR_RADIUS_R0_FM * a ** (1.0 / 3.0)
    potential = 4.0 * np.pi * r_fm**2 / FM2_PER_BARN
    ratio = elastic_over_inelastic(a)
    el = np.where(e < join, np.minimum(inel_join * ratio * bn, max(potential, inel_join * ratio)), inel * ratio)
    return {"inel": inel, "el": el, "cap": cap}
