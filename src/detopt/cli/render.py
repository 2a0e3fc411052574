"""Rich tables of the ``detopt`` command: the material table and the simulation summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from detopt.cli.summary import LayerSummary, ParticleSummary
    from detopt.detector import Material

__all__ = ["MATERIAL_COLUMNS", "console", "estimate_notes", "layers_table", "materials_table", "particles_table"]

#: (header, key in Material.sources, attribute of Material) of each column of the material table.
MATERIAL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("density\ng/cm3", "density", "density_g_cm3"),
    ("X0\ncm", "X0", "radiation_length_cm"),
    ("lambda_I\ncm", "lambda_I", "nuclear_interaction_length_cm"),
    ("lambda_pi\ncm", "lambda_pi", "pion_interaction_length_cm"),
    ("R_M\ncm", "R_M", "moliere_radius_cm"),
    ("E_c\nMeV", "E_c", "critical_energy_mev"),
    ("dE/dx min\nMeV/cm", "dE/dx_min", "dedx_min_mev_cm"),
    ("Z_eff", "Z", "z_eff"),
)

_ESTIMATE_PREFIX = "estimate"
_WIDTH_WHEN_NOT_A_TERMINAL = 140


def console(*, stderr: bool = False) -> Console:
    """A console; when the output is not a terminal (a pipe, a file, a test) it is wide enough not to wrap tables."""
    con = Console(stderr=stderr)
    if not con.is_terminal and con.width < _WIDTH_WHEN_NOT_A_TERMINAL:
        con = Console(stderr=stderr, width=_WIDTH_WHEN_NOT_A_TERMINAL)
    return con


def _is_estimate(material: Material, key: str) -> bool:
    return material.sources.get(key, "").lower().startswith(_ESTIMATE_PREFIX)


def estimate_notes(materials: Mapping[str, Material]) -> list[str]:
    """``"<material> <field>: <how it was estimated>"`` for every value of the table that is not a PDG number."""
    notes = []
    for material in materials.values():
        for _, key, _ in MATERIAL_COLUMNS:
            if _is_estimate(material, key):
                how = material.sources[key][len(_ESTIMATE_PREFIX) :].lstrip(": ")
                notes.append(f"{material.name} {key}: {how}")
    return notes


def materials_table(materials: Mapping[str, Material]) -> Table:
    """Every material with its PDG properties; estimated values carry a ``*``."""
    table = Table(title="detopt material table (PDG Atomic and Nuclear Properties)", title_justify="left")
    table.add_column("material", no_wrap=True)
    for header, _, _ in MATERIAL_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for material in materials.values():
        cells = []
        for _, key, attribute in MATERIAL_COLUMNS:
            value = float(getattr(material, attribute))
            text = f"{value:.4g}" if key != "Z" else f"{value:.3g}"
            cells.append(text + ("*" if _is_estimate(material, key) else ""))
        table.add_row(material.name, *cells)
    return table


def layers_table(rows: Sequence[LayerSummary], title: str) -> Table:
    """Per layer: material, thickness, readout, mean and RMS of the deposited energy."""
    table = Table(title=title, title_justify="left")
    for header in ("layer", "material"):
        table.add_column(header, no_wrap=True)
    table.add_column("thickness\ncm", justify="right", no_wrap=True)
    table.add_column("read\nout", justify="center", no_wrap=True)
    table.add_column("mean deposit\nGeV", justify="right", no_wrap=True)
    table.add_column("RMS\nGeV", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            row.name, row.material, f"{row.thickness_cm:.4g}", "yes" if row.active else "no",
            f"{row.mean_gev:.4g}", f"{row.rms_gev:.4g}",
        )
    return table


def particles_table(rows: Sequence[ParticleSummary]) -> Table:
    """Per particle: containment <E_dep/E>, active fraction <E_active/E_dep>, <E_active/E> and its RMS/mean."""
    table = Table(title="Containment per particle (means over events)", title_justify="left")
    table.add_column("particle", no_wrap=True)
    table.add_column("events", justify="right", no_wrap=True)
    table.add_column("containment\nE_dep/E", justify="right", no_wrap=True)
    table.add_column("active fraction\nE_active/E_dep", justify="right", no_wrap=True)
    table.add_column("read out\nE_active/E", justify="right", no_wrap=True)
    table.add_column("RMS/mean of\nE_active/E", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            row.particle, f"{row.n_events:,}", f"{row.containment:.4g}", f"{row.active_fraction:.3g}",
            f"{row.active_over_energy:.3g}", f"{row.active_resolution:.3g}",
        )
    return table
