"""Material properties for calorimetry, from the PDG "Atomic and nuclear properties of materials".

Every number carries its source in ``Material.sources``. Values marked ``PDG`` were taken
from the PDG tables (pdg.lbl.gov/AtomicNuclearProperties, 2024 edition); values marked
``estimate`` were not available offline when the table was written and are derived as
stated (they are flagged so that a user can replace them; see ``docs/physics.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detopt.errors import ConfigError

#: Scale energy E_s = m_e c^2 sqrt(4 pi / alpha) in MeV, used in the Moliere radius (PDG eq. 34.37).
SCALE_ENERGY_MEV = 21.2052

PDG = "PDG AtomicNuclearProperties"


@dataclass(frozen=True)
class Material:
    """Bulk properties of one material. Lengths in cm, energies in MeV.

    ``z_eff`` is the electron-weighted mean atomic number (for elements, Z itself); it enters
    the longitudinal containment t_95 = t_max + 0.08 Z + 9.6 (PDG eq. 34.35).
    """

    name: str
    density_g_cm3: float
    radiation_length_cm: float
    nuclear_interaction_length_cm: float
    pion_interaction_length_cm: float
    critical_energy_mev: float
    dedx_min_mev_cm: float
    z_eff: float
    z_over_a: float
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    #: how the Geant4 backend builds a user material: {"nist": "G4_..."} or {"elements": {"Pb": 1, "O": 1}}
    geant4: dict[str, object] | None = field(default=None, compare=False, repr=False)

    @property
    def moliere_radius_cm(self) -> float:
        """R_M = X0 E_s / E_c (PDG eq. 34.37)."""
        return self.radiation_length_cm * SCALE_ENERGY_MEV / self.critical_energy_mev

    @property
    def ionization_per_radiation_length_mev(self) -> float:
        """Minimum-ionizing energy loss over one radiation length, X0 dE/dx|min, in MeV.

        The shower energy a layer absorbs per crossing charged track scales with this
        (Rossi's critical energy is about the same number).
        """
        return self.radiation_length_cm * self.dedx_min_mev_cm

    @property
    def ionization_per_interaction_length_mev(self) -> float:
        """lambda_I dE/dx|min in MeV: the hadronic analogue of the quantity above."""
        return self.nuclear_interaction_length_cm * self.dedx_min_mev_cm


def _element(
    name: str, rho: float, x0: float, lam_i: float, lam_pi: float, ec: float, dedx: float, z: float, z_a: float,
    pion_source: str = PDG,
) -> Material:
    sources = {k: PDG for k in ("density", "X0", "lambda_I", "E_c", "dE/dx_min", "Z", "Z/A")}
    sources["lambda_pi"] = pion_source
    sources["R_M"] = "PDG eq. 34.37 from X0 and E_c (reproduces the PDG table to 4 digits)"
    return Material(name, rho, x0, lam_i, lam_pi, ec, dedx, z, z_a, sources)


def _compound(
    name: str, rho: float, x0: float, lam_i: float, lam_pi: float, ec: float, dedx: float, z_eff: float, z_a: float,
    estimated: dict[str, str] | None = None,
) -> Material:
    m = _element(name, rho, x0, lam_i, lam_pi, ec, dedx, z_eff, z_a)
    m.sources["Z"] = "electron-weighted mean Z of the formula"
    for key, why in (estimated or {}).items():
        m.sources[key] = f"estimate: {why}"
    return m


_HEAVY_PION = "lambda_I x 1.15, the lambda_pi/lambda_I ratio of Pb and W in the PDG tables"
_LIGHT_PION = "lambda_I x 1.35, the lambda_pi/lambda_I ratio of carbon in the PDG tables"


def _build_table() -> dict[str, Material]:
    rows = [
        _element("Pb", 11.35, 0.5612, 17.59, 19.93, 7.43, 12.74, 82, 0.39575),
        _element("Fe", 7.874, 1.757, 16.77, 20.42, 21.68, 11.43, 26, 0.46557),
        _element("W", 19.30, 0.3504, 9.946, 11.33, 7.97, 22.10, 74, 0.40250),
        _element("Cu", 8.960, 1.436, 15.32, 18.51, 19.42, 12.57, 29, 0.45636),
        _compound("PbWO4", 8.300, 0.8903, 20.27, 20.27 * 1.15, 9.64, 10.20, 66.3, 0.41315,
                  {"lambda_pi": _HEAVY_PION}),
        _compound("PbF2", 7.770, 0.9342, 21.89, 21.89 * 1.15, 9.26, 9.53, 68.9, 0.40783,
                  {"lambda_pi": _HEAVY_PION, "lambda_I": "PDG value recalled to ~2%",
                   "E_c": "X0 dE/dx|min x 1.04 (the Pb ratio of E_c to X0 dE/dx)"}),
        _compound("BGO", 7.130, 1.118, 22.31, 22.31 * 1.15, 10.49, 8.92, 59.9, 0.42065,
                  {"lambda_pi": _HEAVY_PION, "E_c": "from the PDG Moliere radius 2.259 cm via eq. 34.37"}),
        _compound("CsI", 4.510, 1.860, 38.04, 38.04 * 1.15, 11.17, 5.605, 54.0, 0.41569,
                  {"lambda_pi": _HEAVY_PION}),
        _element("LAr", 1.396, 14.00, 85.77, 85.77 * 1.2, 32.84, 2.105, 18, 0.45059,
                 pion_source="estimate: lambda_I x 1.2, between the heavy (1.15) and carbon (1.35) ratios"),
        _element("Si", 2.329, 9.370, 46.52, 46.52 * 1.25, 40.19, 3.876, 14, 0.49848,
                 pion_source="estimate: lambda_I x 1.25, between the heavy (1.15) and carbon (1.35) ratios"),
        _compound("polystyrene", 1.060, 41.31, 77.07, 77.07 * 1.35, 93.11, 2.052, 5.29, 0.53768,
                  {"lambda_pi": _LIGHT_PION}),
    ]
    return {m.name: m for m in rows}


_ALIASES = {
    "lead": "Pb", "iron": "Fe", "tungsten": "W", "copper": "Cu", "lead_tungstate": "PbWO4",
    "lead_fluoride": "PbF2", "bi4ge3o12": "BGO", "argon": "LAr", "liquid_argon": "LAr", "silicon": "Si",
    "scintillator": "polystyrene", "plastic": "polystyrene",
}


def material_table() -> dict[str, Material]:
    """All built-in materials by name (a fresh dict; the materials themselves are immutable)."""
    return _build_table()


def get_material(name: str, extra: Mapping[str, Material] | None = None) -> Material:
    """Look a material up by name (case-insensitive, a few common aliases) in the built-in table and ``extra``
    (a user's materials, :func:`load_material_file`)."""
    table = {**_build_table(), **(extra or {})}
    if name in table:
        return table[name]
    lowered = {k.lower(): k for k in table}
    key = name.strip().lower()
    if key in lowered:
        return table[lowered[key]]
    if key in _ALIASES:
        return table[_ALIASES[key]]
    raise ConfigError("material", f"unknown material {name!r}; allowed: {', '.join(sorted(table))}")


def validate_material(m: Material) -> Material:
    """Check that every property of a user-defined material is finite and positive."""
    for attr in ("density_g_cm3", "radiation_length_cm", "nuclear_interaction_length_cm",
                 "pion_interaction_length_cm", "critical_energy_mev", "dedx_min_mev_cm", "z_eff", "z_over_a"):
        v = getattr(m, attr)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"material[{m.name}].{attr}", f"must be a finite number > 0, got {v!r}")
    return m


_FILE_KEYS = {
    "density_g_cm3", "radiation_length_cm", "nuclear_interaction_length_cm", "pion_interaction_length_cm",
    "critical_energy_mev", "dedx_min_mev_cm", "z_eff", "z_over_a",
}


def material_from_mapping(entry: Mapping[str, Any], field: str, source: str) -> Material:
    """One user material (the keys of :class:`Material`; ``pion_interaction_length_cm`` defaults to
    lambda_I x 1.15, the heavy-material ratio of the PDG tables), checked key by key."""
    if not isinstance(entry, Mapping):
        raise ConfigError(field, "each material must be a mapping of its properties")
    unknown = sorted(set(entry) - _FILE_KEYS - {"name", "geant4"})
    if unknown:
        raise ConfigError(f"{field}.{unknown[0]}", f"unknown key; allowed: name, geant4, {', '.join(sorted(_FILE_KEYS))}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{field}.name", f"must be a non-empty name, got {name!r}")
    values: dict[str, float] = {}
    for key in sorted(_FILE_KEYS):
        if key not in entry:
            if key == "pion_interaction_length_cm" and "nuclear_interaction_length_cm" in entry:
                continue
            raise ConfigError(f"{field}.{key}", "missing (every property of the material is needed)")
        v = entry[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ConfigError(f"{field}.{key}", f"must be a finite number > 0, got {v!r}")
        values[key] = float(v)
    sources = {k: source for k in ("density", "X0", "lambda_I", "E_c", "dE/dx_min", "Z", "Z/A", "lambda_pi")}
    if "pion_interaction_length_cm" not in values:
        values["pion_interaction_length_cm"] = values["nuclear_interaction_length_cm"] * 1.15
        sources["lambda_pi"] = f"estimate: {_HEAVY_PION}"
    if values["z_over_a"] > 1:
        raise ConfigError(f"{field}.z_over_a", f"must be at most 1 (hydrogen), got {values['z_over_a']}")
    geant4 = entry.get("geant4")
    if geant4 is not None:
        geant4 = _geant4_entry(geant4, f"{field}.geant4")
    return Material(name.strip(), sources=sources, geant4=geant4, **values)


def _geant4_entry(value: Any, field: str) -> dict[str, object]:
    if isinstance(value, Mapping) and set(value) == {"nist"} and isinstance(value["nist"], str) and value["nist"].startswith("G4_"):
        return {"nist": value["nist"]}
    if isinstance(value, Mapping) and set(value) == {"elements"} and isinstance(value["elements"], Mapping) and value["elements"]:
        elements = {}
        for symbol, atoms in value["elements"].items():
            if not isinstance(symbol, str) or not symbol.isalpha() or isinstance(atoms, bool) or not isinstance(atoms, int) or atoms < 1:
                raise ConfigError(field, f"elements must map element symbols to whole numbers of atoms >= 1, got {symbol!r}: {atoms!r}")
            elements[symbol] = atoms
        return {"elements": elements}
    raise ConfigError(field, f"must be {{nist: G4_<name>}} or {{elements: {{symbol: atoms, ...}}}}, got {value!r}")


def load_material_file(path: str | Path, field: str = "materials") -> dict[str, Material]:
    """A user's YAML material file (a list under ``materials:``), every entry checked, names unique and not
    already in the built-in table (so a built-in material is never silently replaced)."""
    import yaml

    from detopt.safe_yaml import load_yaml

    path = Path(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(field, f"material file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(field, f"cannot read the material file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(field, f"malformed YAML in {path}: {exc}") from None
    if not isinstance(raw, Mapping) or set(raw) != {"materials"} or not isinstance(raw["materials"], list) or not raw["materials"]:
        raise ConfigError(field, f"{path} must hold one key, materials: a list of materials")
    builtin = {k.lower() for k in _build_table()} | set(_ALIASES)
    table: dict[str, Material] = {}
    for i, entry in enumerate(raw["materials"]):
        material = material_from_mapping(entry, f"{field}[{i}]", f"user file {path.name}")
        if material.name.lower() in builtin or material.name in table:
            raise ConfigError(f"{field}[{i}].name", f"{material.name!r} is already defined (built-in or earlier in the file)")
        table[material.name] = material
    return table
