"""The sampling calorimeter of the AIDO paper as a ready-made design space.

Source: K. Schmidt et al., "End-to-End Detector Optimization with Diffusion
Models: A Case Study in Sampling Calorimeters", Particles 8 (2025) 47,
doi:10.3390/particles8020047 (``../shared/seeds/003_347b7bad7e6c29df.txt``).

Section 6: six layers, 50 cm x 50 cm transverse, alternating absorber
(passive: Pb or Fe) and scintillator (active: PbWO4 or polystyrene) along the
beam; the 12 optimizable parameters are the six thicknesses (strictly positive)
and the six material choices. Section 6.1: material costs 25 EUR/cm (Pb),
4.16 EUR/cm (Fe), 2.5k EUR/cm (PbWO4), 0.01 EUR/cm (polystyrene), used in the
cost of eq. 8. The starting design (a thick front absorber, figure 3 upper)
follows the AIDO study: absorbers 40, 10, 10 cm, scintillators 5, 5, 5 cm,
every material probability 0.5/0.5, sampling sigma 2.5 cm.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.detector import CalorimeterLayout, SamplingCalorimeter

__all__ = [
    "AIDO_ABSORBER_COST_EUR_PER_CM",
    "AIDO_ABSORBER_MATERIALS",
    "AIDO_ACTIVE",
    "AIDO_LAYERS",
    "AIDO_LAYER_NAMES",
    "AIDO_SCINTILLATOR_COST_EUR_PER_CM",
    "AIDO_SCINTILLATOR_MATERIALS",
    "AIDO_START_THICKNESS_CM",
    "AIDO_THICKNESS_BOUNDS_CM",
    "AIDO_THICKNESS_SIGMA_CM",
    "AIDO_TRANSVERSE_SIZE_CM",
    "aido_calorimeter",
    "aido_design_space",
    "aido_layout",
]

AIDO_LAYERS: tuple[tuple[str, bool], ...] = (
    ("absorber_0", False),
    ("scintillator_0", True),
    ("absorber_1", False),
    ("scintillator_1", True),
    ("absorber_2", False),
    ("scintillator_2", True),
)
"""(layer name, active) from the front of the detector; absorbers are passive, scintillators read out (section 6)."""

AIDO_LAYER_NAMES: tuple[str, ...] = tuple(name for name, _ in AIDO_LAYERS)
"""Layer names, front to back."""

AIDO_ACTIVE: Mapping[str, bool] = MappingProxyType(dict(AIDO_LAYERS))
"""Read-only layer name -> active (True for scintillators)."""

AIDO_ABSORBER_MATERIALS: tuple[str, ...] = ("Pb", "Fe")
"""Absorber choices, section 6."""

AIDO_ABSORBER_COST_EUR_PER_CM: tuple[float, ...] = (25.0, 4.16)
"""EUR per cm of thickness for Pb, Fe (section 6.1)."""

AIDO_SCINTILLATOR_MATERIALS: tuple[str, ...] = ("PbWO4", "polystyrene")
"""Scintillator choices, section 6."""

AIDO_SCINTILLATOR_COST_EUR_PER_CM: tuple[float, ...] = (2500.0, 0.01)
"""EUR per cm of thickness for PbWO4, polystyrene (section 6.1)."""

AIDO_START_THICKNESS_CM: Mapping[str, float] = MappingProxyType(
    {
        "absorber_0": 40.0,
        "scintillator_0": 5.0,
        "absorber_1": 10.0,
        "scintillator_1": 5.0,
        "absorber_2": 10.0,
        "scintillator_2": 5.0,
    }
)
"""Starting thickness of each layer in cm: a thick front absorber (figure 3 upper)."""

AIDO_THICKNESS_BOUNDS_CM: tuple[float, float] = (0.01, 200.0)
"""Thickness bounds in cm: strictly positive (section 6); at most the 200 cm total length limit (section 6.1)."""

AIDO_THICKNESS_SIGMA_CM = 2.5
"""Initial sampling standard deviation of each thickness in cm."""


def aido_design_space() -> DesignSpace:
    """The paper's 12-parameter starting design: 6 thicknesses (cm), then 6 materials, front to back.

    Parameters are named ``<layer>_thickness`` and ``<layer>_material`` for the
    layers of :data:`AIDO_LAYER_NAMES`; each material parameter carries its
    per-category cost in EUR/cm (AIDO eq. 8) and starts at probability 0.5/0.5.
    """
    thicknesses = [
        ContinuousParameter(
            name=f"{layer}_thickness",
            value=AIDO_START_THICKNESS_CM[layer],
            bounds=AIDO_THICKNESS_BOUNDS_CM,
            sigma=AIDO_THICKNESS_SIGMA_CM,
            unit="cm",
        )
        for layer in AIDO_LAYER_NAMES
    ]
    materials = [
        DiscreteParameter(
            name=f"{layer}_material",
            categories=AIDO_SCINTILLATOR_MATERIALS if active else AIDO_ABSORBER_MATERIALS,
            probabilities=(0.5, 0.5),
            cost_per_unit=AIDO_SCINTILLATOR_COST_EUR_PER_CM if active else AIDO_ABSORBER_COST_EUR_PER_CM,
        )
        for layer, active in AIDO_LAYERS
    ]
    return DesignSpace(parameters=[*thicknesses, *materials])


AIDO_TRANSVERSE_SIZE_CM = 50.0
"""Transverse size of every layer in cm: 50 cm x 50 cm (section 6)."""


def aido_layout() -> CalorimeterLayout:
    """The paper's layer order and readout (section 6): :data:`AIDO_LAYERS`, 50 cm x 50 cm transverse.

    Thicknesses and materials are not fixed here; each layer reads the design
    parameters ``<layer>_thickness`` (cm) and ``<layer>_material`` of
    :func:`aido_design_space`.
    """
    return CalorimeterLayout(
        layers=[{"name": name, "active": active} for name, active in AIDO_LAYERS],
        transverse_size_cm=AIDO_TRANSVERSE_SIZE_CM,
    )


def aido_calorimeter() -> SamplingCalorimeter:
    """The starting detector: :func:`aido_layout` built from the current design of :func:`aido_design_space`.

    Materials are the most probable categories, the first on the 0.5/0.5 ties
    of the start (Pb absorbers, PbWO4 scintillators).
    """
    return aido_layout().build(aido_design_space().current_design())
