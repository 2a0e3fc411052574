"""detopt material names -> Geant4 materials (NIST database, or a compound built from NIST elements)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from detopt.detector.materials import Material, material_table
from detopt.errors import ConfigError

#: detopt material -> Geant4 NIST material (G4NistMaterialBuilder names, Geant4 11.4).
NIST_MATERIALS: Mapping[str, str] = MappingProxyType({
    "Pb": "G4_Pb",
    "Fe": "G4_Fe",
    "W": "G4_W",
    "Cu": "G4_Cu",
    "PbWO4": "G4_PbWO4",
    "BGO": "G4_BGO",
    "CsI": "G4_CESIUM_IODIDE",
    "LAr": "G4_lAr",
    "Si": "G4_Si",
    "polystyrene": "G4_POLYSTYRENE",
})

#: detopt materials that Geant4's NIST database lacks: atoms per formula unit (built with the detopt density).
COMPOUNDS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "PbF2": MappingProxyType({"Pb": 1, "F": 2}),
})


def geant4_material_spec(material: Material) -> dict[str, object]:
    """How the worker builds ``material``: ``{"nist": name}`` or ``{"name", "elements", "atoms", "density_g_cm3"}``."""
    if material.geant4 is not None:  # a user material says how Geant4 builds it
        if "nist" in material.geant4:
            return {"nist": material.geant4["nist"]}
        formula = dict(material.geant4["elements"])  # type: ignore[call-overload]
        return {
            "name": f"detopt_{material.name}", "elements": list(formula), "atoms": list(formula.values()),
            "density_g_cm3": material.density_g_cm3,
        }
    if material.name in NIST_MATERIALS:
        return {"nist": NIST_MATERIALS[material.name]}
    if material.name in COMPOUNDS:
        formula = COMPOUNDS[material.name]
        return {
            "name": f"detopt_{material.name}", "elements": list(formula), "atoms": list(formula.values()),
            "density_g_cm3": material.density_g_cm3,
        }
    allowed = sorted(set(NIST_MATERIALS) | set(COMPOUNDS))
    raise ConfigError(
        f"material[{material.name}]",
        f"has no Geant4 definition; the Geant4 backend knows {', '.join(allowed)}, and a user material "
        "with a geant4 entry ({nist: G4_...} or {elements: {...}})",
    )


def supported_materials() -> tuple[str, ...]:
    """detopt materials the Geant4 backend can build (all of the built-in table)."""
    return tuple(name for name in material_table() if name in NIST_MATERIALS or name in COMPOUNDS)
