"""Figures and a self-contained HTML report of an optimization run (the AIDO paper's figures 4, 5, 6, 8, 9)."""

from detopt.report.figures import (
    plot_composition,
    plot_constraints,
    plot_losses,
    plot_probabilities,
    plot_validation,
)
from detopt.report.html import write_report

__all__ = [
    "plot_composition",
    "plot_constraints",
    "plot_losses",
    "plot_probabilities",
    "plot_validation",
    "write_report",
]
