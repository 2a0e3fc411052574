"""Figures: distributions, profiles and gradients with their ratio panels are written as PNG."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.errors import DataError
from detopt.evaluation import plots


def test_figures_are_written(tmp_path) -> None:
    rng = np.random.default_rng(0)
    sim = {"total_energy_gev": rng.normal(10, 1, 500), "radius_cm": rng.gamma(3.0, 0.2, 500)}
    gen = {"total_energy_gev": rng.normal(10.1, 1, 400), "radius_cm": rng.gamma(3.0, 0.21, 400), "other": np.ones(4)}
    paths = plots.plot_observables(sim, gen, tmp_path / "figs", prefix="a_", title="PbWO4 e- 10 GeV")
    assert [p.name for p in paths] == ["a_total_energy_gev.png", "a_radius_cm.png"]
    prof = plots.plot_profile(rng.random((50, 12)), rng.random((40, 12)), np.linspace(0, 24, 13), tmp_path / "p.png",
                              xlabel="depth [cm]")
    g = plots.plot_gradients(np.ones((5, 2)), np.ones((5, 2)), 0.1 * np.ones((5, 2)), ["depth_cm", "r_max_cm"],
                             tmp_path / "g.png")
    for p in (*paths, prof, g):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert not list(tmp_path.rglob(".*.tmp"))


def test_ratio_and_bad_shapes() -> None:
    r, err = plots._ratio(np.array([2.0, 1.0]), np.array([0.2, 0.1]), np.array([1.0, 0.0]), np.array([0.1, 0.0]))
    assert r[0] == pytest.approx(2.0) and np.isnan(r[1])
    assert err[0] == pytest.approx(2.0 * np.sqrt(0.01 + 0.01))
    with pytest.raises(DataError, match="plot_profile"):
        plots.plot_profile(np.ones((5, 3)), np.ones((5, 4)), np.arange(4), "unused.png")
