"""Charged-pion showers: first interaction, electromagnetic fraction, hadronic profile.

References: PDG review "Calorimetry" (hadronic showers); D. Groom, NIM A572 (2007) 633
(EM fraction); R. Bock et al., NIM 186 (1981) 533 (longitudinal profile); R. Wigmans,
"Calorimetry" (2nd ed., 2017) (invisible energy, e/h).
"""

from __future__ import annotations

import numpy as np

#: Scale energy E0 of the EM-fraction power law, GeV (Groom 2007, pions).
EM_FRACTION_E0_GEV = 1.0
#: Exponent k of f_em = 1 - (E/E0)^(k-1) (Groom 2007, pions: k ~ 0.82).
EM_FRACTION_K = 0.82
#: Beta concentration of the event-by-event EM fraction: sigma(f_em) ~ 0.12 at f_em ~ 0.4 (Groom 2007, Fig. 4).
EM_FRACTION_CONCENTRATION = 15.0
#: Mean visible share of the non-EM energy (1 - invisible: binding energy, slow neutrons): h/e = 0.69,
#: e/h = 1.46, a typical non-compensating value (Wigmans: e/h ~ 1.3-1.6); fitted to Geant4 on the broad
#: reference (docs/scripts/calibrate_fastsim.py; 0.65 before any calibration).
HADRONIC_VISIBLE_FRACTION = 0.6859
#: Beta concentration of the visible share: sigma ~ 0.1.
HADRONIC_VISIBLE_CONCENTRATION = 20.0
#: Radius of the Cauchy-type lateral profile of the hadronic part, in lambda_I, fitted to Geant4's radial
#: profile in iron (0.23 before: 95% of that part within 1 lambda_I); with the narrower EM part the whole
#: shower keeps ~95% within 1 lambda_I (PDG "Calorimetry"), as Geant4's does (docs/geant4.md).
HADRONIC_RADIUS_LAMBDA = 0.32
#: Factor on the depth scale 1/d of the Bock profile of the hadronic part (1 = Bock et al. 1981, whose fit
#: describes whole showers, EM part included), fitted to Geant4's profiles in iron and behind lead.
HADRONIC_DEPTH_SCALE = 0.4423
#: Exponent of the energy dependence of that factor, (E / 10 GeV)^k: Geant4's hadron showers lengthen
#: with energy faster than Bock's fit once its depth is rescaled (0 = Bock's own energy dependence).
HADRONIC_DEPTH_ENERGY_EXPONENT = 0.3623
#: Mean ionization loss of a GeV pion over the minimum dE/dx of the table: the relativistic rise, limited by
#: the density effect, puts the mean loss at beta gamma ~ 10-100 some 10-25% above the minimum in dense
#: materials (PDG review "Passage of particles through matter", Fig. 34.2); fitted to Geant4's deposits in
#: thin layers in front of showers (1 = the minimum, the value before the broad calibration).
PION_MEAN_LOSS_OVER_MIN = 1.28
#: Share of the visible non-EM energy deposited where the pion interacts: protons and nuclear fragments of
#: the intranuclear cascade and evaporation stop within millimetres (Wigmans, "Calorimetry", ch. 2.3); the
#: rest follows the Bock profile. Fitted to Geant4's deposits in thin layers (0 before the broad calibration).
HADRONIC_LOCAL_FRACTION = 0.0604
#: Exponent kappa of the material dependence of the hadronic (non-EM) response, (Z_eff / 26)^-kappa
#: relative to iron: the invisible share (nuclear binding energy, neutrons) grows with Z, while hydrogenous
#: media see the MeV neutrons through elastic scattering on protons (Wigmans, "Calorimetry", ch. 3).
HADRONIC_RESPONSE_Z_EXPONENT = -0.0317
#: Log-normal event-by-event spread of the Bock parameters a and d (0.15 before; fitted to Geant4's widths).
HADRONIC_SHAPE_SPREAD = 0.6
#: Factor on the GFlash radii of the EM part of a pion shower (1 = a photon shower on the axis), fitted to
#: Geant4: its pi0s come from all over the hadronic cascade, not from one point on the axis.
PION_EM_RADIAL_SCALE = 3.1


def mean_em_fraction(energy_gev: np.ndarray) -> np.ndarray:
    """Mean EM fraction of a pion shower, 1 - (E/E0)^(k-1) (Groom 2007), kept within [0.05, 0.95]."""
    f = 1.0 - np.power(np.maximum(energy_gev, 1e-6) / EM_FRACTION_E0_GEV, EM_FRACTION_K - 1.0)
    return np.clip(f, 0.05, 0.95)


def sample_beta(mean: np.ndarray, concentration: float, rng: np.random.Generator) -> np.ndarray:
    """Beta draws with the given mean and concentration a + b."""
    return rng.beta(mean * concentration, (1.0 - mean) * concentration)


def hadronic_profile_shape(energy_gev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gamma shape a and rate d (per lambda_I) of the hadronic component, Bock et al. (1981):
    a = 0.6165 + 0.3183 ln E, d = 0.9099 - 0.0237 ln E (E in GeV); d is divided by
    HADRONIC_DEPTH_SCALE (E / 10 GeV)^HADRONIC_DEPTH_ENERGY_EXPONENT."""
    ln_e = np.log(np.maximum(energy_gev, 0.05))
    scale = HADRONIC_DEPTH_SCALE * np.exp(HADRONIC_DEPTH_ENERGY_EXPONENT * (ln_e - np.log(10.0)))
    return np.maximum(0.6165 + 0.3183 * ln_e, 0.3), np.maximum(0.9099 - 0.0237 * ln_e, 0.5) / scale


def hadronic_response(z_eff: np.ndarray) -> np.ndarray:
    """Material factor of the hadronic (non-EM) response relative to iron, (Z_eff / 26)^-kappa."""
    return np.power(np.maximum(z_eff, 1.0) / 26.0, -HADRONIC_RESPONSE_Z_EXPONENT)


def cauchy_containment(radius: np.ndarray, r0: np.ndarray) -> np.ndarray:
    """Fraction within ``radius`` of f(r) = 2 r r0^2 / (r^2 + r0^2)^2."""
    r2 = radius * radius
    return r2 / (r2 + r0 * r0)


def moyal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard Moyal draws (-2 ln|N(0,1)|), an approximation of the Landau distribution; mean gamma_E + ln 2."""
    z = rng.standard_normal(shape)
    return -2.0 * np.log(np.maximum(np.abs(z), 1e-300))


MOYAL_MEAN = float(np.euler_gamma + np.log(2.0))
#: Landau width constant K/2 = 0.1535 MeV cm^2/g (PDG, "Passage of particles through matter").
LANDAU_XI_MEV_CM2_G = 0.1535
