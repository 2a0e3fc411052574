"""Calibrate the built-in fast simulator against Geant4.

Two steps, because Geant4 is ~10^4 times slower than the fast simulator:

1. **Reference** (once, expensive): the Geant4 side of the comparison of
   `detopt.simulation.geant4.compare` (both AIDO designs, photons and pi+ at 2, 5, 10, 20 GeV, and the
   homogeneous blocks), plus 1600 extra pion events at 2, 5 and 10 GeV on the AIDO starting design, where
   400 events leave the mean of a scintillator behind 40 cm of lead uncertain by 9-27%. Stored in
   ``docs/data/geant4_reference.json``::

       export GEANT4_DATA_DIR=/tmp/g4data; detopt geant4 offline-data $GEANT4_DATA_DIR
       python -m detopt.simulation.geant4.compare --json /tmp/cmp_full.json        # ~10 min, 2 cores
       python docs/scripts/calibrate_fastsim.py extra-geant4 --out /tmp/extra.json  # ~6 min of one core
       python docs/scripts/calibrate_fastsim.py reference --comparison /tmp/cmp_full.json --extra /tmp/extra.json --out docs/data/geant4_reference.json

2. **Fit** (cheap): the free parameters of the fast simulator against the stored numbers with
   scipy.optimize, within bounds that keep the PDG-based physics tests green::

       python docs/scripts/calibrate_fastsim.py fit --reference docs/data/geant4_reference.json

Geant4 runs on the substitute data of ``detopt geant4 offline-data`` here (docs/geant4.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

#: Extra Geant4 pion events: (design, energy GeV, events). The seed of each is EXTRA_SEED_OFFSET + 100 E
#: (distinct from compare.py's ``int(100 E) + len(particle)``). 20 GeV was started too but did not finish in
#: the time of the calibration session, so it is not part of the stored reference.
EXTRA_PION_CASES = (("AIDO start", 2.0, 1600), ("AIDO start", 5.0, 1600), ("AIDO start", 10.0, 1600))
EXTRA_SEED_OFFSET = 50_000


def extra_geant4(out: Path, data_dir: str | None) -> dict:
    """Run the extra Geant4 pion events, one process at a time, saving after each case."""
    from detopt.atomic import write_text_atomic
    from detopt.simulation.geant4.compare import aido_designs
    from detopt.simulation.geant4.data import SubstituteDataWarning
    from detopt.simulation.geant4.simulator import Geant4Simulator

    designs = aido_designs()
    sim = Geant4Simulator(data_dir=data_dir)
    result: dict = {"cases": []}
    if out.exists():
        result = json.loads(out.read_text(encoding="utf-8"))
    done = {(c["design"], c["energy_gev"]) for c in result["cases"]}
    for design, energy, n in EXTRA_PION_CASES:
        if (design, energy) in done:
            continue
        seed = EXTRA_SEED_OFFSET + int(100 * energy)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SubstituteDataWarning)
            batch = sim.simulate(designs[design], n, ("pi+",), (energy, energy), seed=seed)
        result["cases"].append({
            "design": design, "particle": "pi+", "energy_gev": energy, "n": n, "seed": seed,
            "mean": batch.deposits.mean(axis=0).tolist(), "std": batch.deposits.std(axis=0, ddof=1).tolist(),
            "geant4_data": batch.metadata["geant4_data"], "event_loop_s": batch.metadata["event_loop_s"],
        })
        write_text_atomic(out, json.dumps(result, indent=1) + "\n")
        print(f"{design} pi+ {energy:g} GeV: {n} events in {time.perf_counter() - start:.0f} s", flush=True)
    return result


def combine(n1: int, m1: np.ndarray, s1: np.ndarray, n2: int, m2: np.ndarray, s2: np.ndarray):
    """Count, mean and standard deviation (ddof=1) of two samples merged, from their own statistics."""
    n = n1 + n2
    mean = (n1 * m1 + n2 * m2) / n
    ss = (n1 - 1) * s1**2 + (n2 - 1) * s2**2 + n1 * (m1 - mean) ** 2 + n2 * (m2 - mean) ** 2
    return n, mean, np.sqrt(ss / (n - 1))


def build_reference(comparison: dict, extra: dict | None) -> dict:
    """The Geant4 side of a comparison (``fastsim`` entries dropped), with the extra pion events merged in."""
    cases = []
    for case in comparison["cases"]:
        case = {k: v for k, v in case.items() if k != "fastsim"}
        if case["kind"] == "layers" and extra is not None:
            for more in extra["cases"]:
                if (more["design"], more["particle"], more["energy_gev"]) == (
                    case["design"], case["particle"], case["energy_gev"]
                ):
                    n, mean, std = combine(
                        case["n_geant4"], np.array(case["geant4"]["mean"]), np.array(case["geant4"]["std"]),
                        more["n"], np.array(more["mean"]), np.array(more["std"]),
                    )
                    case = {**case, "n_geant4": n, "geant4": {"mean": mean.tolist(), "std": std.tolist()},
                            "extra_seed": more["seed"]}
        cases.append(case)
    return {
        "description": "Geant4 (geant4_pybind 0.1.3, Geant4 11.4.p01, physics list FTFP_BERT_EMV-noEmExtra, "
        "detopt substitute data) reference for the calibration of the fast simulator: per-layer mean and std "
        "(GeV) on the layered designs, containment, resolution and profiles in the homogeneous blocks. "
        "Beams on the axis at the stated energy.",
        "regenerate": [line.strip() for line in __doc__.split("::")[1].split("2. **Fit**")[0].splitlines()
                       if line.strip()],
        "quick": comparison["quick"], "mean_tolerance": comparison["mean_tolerance"],
        "width_tolerance": comparison["width_tolerance"], "cases": cases,
    }


# -- the fit ---------------------------------------------------------------------------------------------

#: The free parameters: (module, constant, lower bound, upper bound). The bounds keep the PDG-based tests
#: of tests/simulation green (t_95 within 10% of the PDG rule; 90% within 1 R_M +-5 points, 99% within
#: 3.5 R_M +-2 points), checked after the fit by running them.
EM_PARAMETERS = (
    ("em_shower", "CONTAINMENT_SCALE", 0.9, 1.0),
    ("em_shower", "FLUCTUATION_SCALE", 0.3, 1.2),
    ("em_shower", "RADIAL_CORE_SCALE", 0.4, 1.2),
    ("em_shower", "RADIAL_TAIL_SCALE", 0.45, 0.65),
)
HADRON_PARAMETERS = (
    ("hadron_shower", "HADRONIC_VISIBLE_FRACTION", 0.5, 0.95),
    ("hadron_shower", "HADRONIC_DEPTH_SCALE", 0.3, 1.5),
    ("hadron_shower", "HADRONIC_RADIUS_LAMBDA", 0.1, 0.5),
    ("hadron_shower", "HADRONIC_SHAPE_SPREAD", 0.0, 0.6),
    ("hadron_shower", "PION_EM_RADIAL_SCALE", 0.5, 8.0),
)
#: Minimum deposit (GeV) added to both means before taking their ratio: below a few MeV the ratio of two
#: tiny leakage tails is not a useful target.
RATIO_FLOOR_GEV = 0.002
#: Residual scales: a residual of 1 is one tolerance (10% on means, 25% on widths; profiles below).
BLOCK_SCALES = {"containment": 0.02, "depth50_cm": 0.05, "depth90_cm": 0.05}
#: Radial profile: residual (fast - Geant4) / 0.03 of the cumulative fraction at the first ring edges (the
#: 50%/90% radii interpolated in the coarse rings are a poor target).
RADIAL_RINGS, RADIAL_SCALE = 6, 0.03


class patched:
    """Context manager setting module constants of detopt.simulation (restored on exit): the fit's knob."""

    def __init__(self, values: dict[tuple[str, str], float]) -> None:
        self.values = values
        self.saved: dict[tuple[str, str], float] = {}

    def __enter__(self) -> "patched":
        import importlib

        for (module, name), value in self.values.items():
            mod = importlib.import_module(f"detopt.simulation.{module}")
            self.saved[(module, name)] = getattr(mod, name)
            setattr(mod, name, value)
        return self

    def __exit__(self, *exc: object) -> None:
        import importlib

        for (module, name), value in self.saved.items():
            setattr(importlib.import_module(f"detopt.simulation.{module}"), name, value)


def fast_statistics(reference: dict, n_fast: int, particle: str | None = None) -> list[dict | None]:
    """The fast simulator's statistics for every case of the reference (None for other particles)."""
    from detopt.simulation.geant4.compare import _fastsim_case

    return [_fastsim_case(c, n_fast) if particle in (None, c["particle"]) else None for c in reference["cases"]]


def residuals(reference: dict, fast: list[dict | None], block_scales: dict[str, float] | None = None) -> np.ndarray:
    """Residuals in units of the tolerance: per active layer log(mean ratio) / 0.10 (deflated by Geant4's
    statistical error) and log(std ratio) / 0.25; per block log ratios of containment, depths and radii."""
    out: list[float] = []
    for case, f in zip(reference["cases"], fast):
        if f is None:
            continue
        g = case["geant4"]
        if case["kind"] == "layers":
            n = case["n_geant4"]
            for i, active in enumerate(case["active"]):
                gm, gs, fm, fs = g["mean"][i], g["std"][i], f["mean"][i], f["std"][i]
                if not active or max(gm, fm) < 0.005:
                    continue
                rel_err = gs / np.sqrt(n) / max(gm, 1e-12)
                scale_m = np.hypot(reference["mean_tolerance"], rel_err)
                out.append(np.log((fm + RATIO_FLOOR_GEV) / (gm + RATIO_FLOOR_GEV)) / scale_m)
                out.append(np.log((fs + RATIO_FLOOR_GEV) / (gs + RATIO_FLOOR_GEV)) / reference["width_tolerance"])
        else:
            for key, scale in (block_scales or BLOCK_SCALES).items():
                out.append(np.log(f[key] / g[key]) / scale)
            cum_f = np.cumsum(f["radial_fraction"])[:RADIAL_RINGS]
            cum_g = np.cumsum(g["radial_fraction"])[:RADIAL_RINGS]
            out.extend(((cum_f - cum_g) / RADIAL_SCALE).tolist())
    return np.asarray(out)


def soft_l1(r: np.ndarray) -> np.ndarray:
    """2 (sqrt(1 + r^2) - 1): r^2 for small residuals, 2|r| for large ones, so that a few rows the model
    cannot describe (the MeV leakage tails behind thick blocks) do not decide the fit alone."""
    return 2.0 * (np.sqrt(1.0 + r * r) - 1.0)


def fit(reference: dict, parameters: tuple, particle: str, n_fast: int, max_evaluations: int,
        log=print) -> dict[tuple[str, str], float]:
    """Least squares (scipy.optimize.minimize, Nelder-Mead on the bounded parameters) of the residuals of
    one particle's cases; the fast simulator runs with a fixed seed, so the objective is deterministic."""
    import importlib

    from scipy import optimize

    keys = [(m, n) for m, n, _, _ in parameters]
    lo = np.array([p[2] for p in parameters])
    hi = np.array([p[3] for p in parameters])
    x0 = np.array([getattr(importlib.import_module(f"detopt.simulation.{m}"), n) for m, n in keys])
    evaluations = [0]

    def objective(x: np.ndarray) -> float:
        x = np.clip(x, lo, hi)
        with patched(dict(zip(keys, x))):
            r = residuals(reference, fast_statistics(reference, n_fast, particle))
        value = float(np.mean(soft_l1(r)))
        evaluations[0] += 1
        log(f"  [{evaluations[0]:3d}] loss/row {value:8.3f}  " + " ".join(f"{n}={v:.4g}" for (_, n), v in zip(keys, x)))
        return value

    log(f"start: loss/row {objective(x0):.3f}")
    res = optimize.minimize(objective, np.clip(x0, lo, hi), method="Nelder-Mead", bounds=list(zip(lo, hi)),
                            options={"maxfev": max_evaluations, "xatol": 1e-3, "fatol": 1e-3})
    best = dict(zip(keys, np.clip(res.x, lo, hi).tolist()))
    log(f"best: loss/row {res.fun:.3f} after {res.nfev} evaluations: "
        + ", ".join(f"{n} = {v:.4g}" for (_, n), v in best.items()))
    return best


#: Free parameters of the fit to the broad reference (docs/data/geant4_broad_reference.json). Photons first
#: (EM shape and albedo), then pions (hadronic response, length, albedo). The radial scales are not here: the
#: broad reference has no radial information (they stay as fitted to the blocks above).
BROAD_EM_PARAMETERS = (
    ("em_shower", "CONTAINMENT_SCALE", 0.87, 1.0),
    ("em_shower", "SHOWER_MAXIMUM_SHIFT_X0", -0.05, 0.0),
    ("fastsim", "THICK_QUANTUM_POWER", 0.0, 1.5),
    ("em_shower", "FLUCTUATION_SCALE", 0.3, 1.2),
    ("em_shower", "START_TRACK_DEPTH_X0", 0.0, 2.0),
    ("albedo", "EM_ALBEDO_GEV_AT_1GEV", 0.0, 0.05),
    ("albedo", "EM_ALBEDO_EXPONENT", 0.0, 1.0),
    ("albedo", "EM_ALBEDO_ATTENUATION_G_CM2", 8.0, 60.0),
    ("albedo", "EM_ALBEDO_Z_EXPONENT", 0.0, 2.0),
    ("albedo", "ALBEDO_QUANTUM_MEV", 0.3, 10.0),
)
BROAD_HADRON_PARAMETERS = (
    ("hadron_shower", "HADRONIC_VISIBLE_FRACTION", 0.5, 0.95),
    ("hadron_shower", "HADRONIC_DEPTH_SCALE", 0.3, 1.5),
    ("hadron_shower", "HADRONIC_DEPTH_ENERGY_EXPONENT", -0.3, 0.6),
    ("hadron_shower", "HADRONIC_SHAPE_SPREAD", 0.0, 1.0),
    ("hadron_shower", "HADRONIC_RESPONSE_Z_EXPONENT", -0.3, 0.3),
    ("hadron_shower", "HADRONIC_LOCAL_FRACTION", 0.0, 0.5),
    ("hadron_shower", "PION_MEAN_LOSS_OVER_MIN", 1.0, 1.3),
    ("albedo", "HADRON_ALBEDO_FRACTION", 0.0, 0.15),
    ("albedo", "HADRON_ALBEDO_ATTENUATION_G_CM2", 10.0, 100.0),
)


#: Size of the first Nelder-Mead simplex, as a fraction of each parameter's range (the default 5% of the
#: value is too small a step on an objective made of finite samples).
SIMPLEX_FRACTION = 0.2


#: Block residual scales in the broad fit: Geant4 contains a photon in 30 cm PbWO4 to 0.2%, which fixes how
#: much backward (albedo) energy may leave through the front face; 0.3% is the tolerance of the tests.
BROAD_BLOCK_SCALES = {**BLOCK_SCALES, "containment": 0.003}


def broad_fast(reference: dict, points: list[dict], n_fast: int) -> list[dict]:
    from detopt.simulation.geant4.fidelity import fast_statistics

    return [fast_statistics(p, reference["transverse_size_cm"], n_fast) for p in points]


def fit_broad(reference: dict, parameters: tuple, particle: str, n_fast: int, max_evaluations: int,
              starts: int, blocks: dict | None = None, seed: int = 0,
              log=print) -> tuple[dict[tuple[str, str], float], list[dict]]:
    """Soft-L1 fit (Nelder-Mead from ``starts`` points: the current values, then random points inside the
    bounds) of one particle's calibration points of the broad reference, together with the first reference
    (``blocks``: docs/data/geant4_reference.json, whose block profiles and containment the broad one lacks);
    validation points are never read."""
    import importlib

    from scipy import optimize

    from detopt.simulation.geant4.fidelity import residuals as broad_residuals

    points = [p for p in reference["points"] if p["split"] == "calibration" and p["particle"] == particle]
    keys = [(m, n) for m, n, _, _ in parameters]
    lo = np.array([p[2] for p in parameters])
    hi = np.array([p[3] for p in parameters])
    current = np.array([getattr(importlib.import_module(f"detopt.simulation.{m}"), n) for m, n in keys])
    rng = np.random.default_rng(seed)
    x_starts = [np.clip(current, lo, hi)] + [lo + (hi - lo) * rng.random(lo.size) for _ in range(starts - 1)]

    def objective(x: np.ndarray) -> float:
        x = np.clip(x, lo, hi)
        with patched(dict(zip(keys, x))):
            r = broad_residuals(points, broad_fast(reference, points, n_fast))
            if blocks is not None:
                r = np.concatenate([r, residuals(blocks, fast_statistics(blocks, n_fast, particle), BROAD_BLOCK_SCALES)])
        return float(np.mean(soft_l1(r)))

    runs = []
    step = SIMPLEX_FRACTION * (hi - lo)
    for k, x0 in enumerate(x_starts):
        simplex = [x0] + [np.where(x0 + step * e <= hi, x0 + step * e, x0 - step * e) for e in np.eye(x0.size)]
        res = optimize.minimize(objective, x0, method="Nelder-Mead", bounds=list(zip(lo, hi)),
                                options={"maxfev": max_evaluations, "xatol": 1e-3, "fatol": 1e-3,
                                         "initial_simplex": np.array(simplex)})
        x = np.clip(res.x, lo, hi)
        runs.append({"start": k, "loss": float(res.fun), "evaluations": int(res.nfev),
                     "values": {f"{m}.{n}": float(v) for (m, n), v in zip(keys, x)}})
        log(f"{particle} start {k}: loss/residual {res.fun:.3f} after {res.nfev} evaluations: "
            + ", ".join(f"{n} = {v:.4g}" for (_, n), v in zip(keys, x)))
    best = min(runs, key=lambda r: r["loss"])
    return {tuple(k.split(".")): v for k, v in best["values"].items()}, runs  # type: ignore[misc]


#: The simulator before the fit to the broad reference: the block-calibrated values (this file's first fit) and
#: the new physics switched off (no albedo, no start tracks, no maximum shift, no thick-layer quantum fall,
#: no vertex deposit, Bock's energy dependence, one hadronic response for all materials).
BEFORE_BROAD = {
    ("em_shower", "CONTAINMENT_SCALE"): 0.9, ("em_shower", "FLUCTUATION_SCALE"): 0.41,
    ("em_shower", "PHOTON_CONVERSION_X0"): 1.0, ("em_shower", "START_TRACK_DEPTH_X0"): 0.0,
    ("em_shower", "SHOWER_MAXIMUM_SHIFT_X0"): 0.0, ("fastsim", "THICK_QUANTUM_POWER"): 0.0,
    ("albedo", "EM_ALBEDO_GEV_AT_1GEV"): 0.0, ("albedo", "HADRON_ALBEDO_FRACTION"): 0.0,
    ("hadron_shower", "HADRONIC_VISIBLE_FRACTION"): 0.69, ("hadron_shower", "HADRONIC_DEPTH_SCALE"): 0.40,
    ("hadron_shower", "HADRONIC_DEPTH_ENERGY_EXPONENT"): 0.0, ("hadron_shower", "HADRONIC_SHAPE_SPREAD"): 0.22,
    ("hadron_shower", "HADRONIC_RESPONSE_Z_EXPONENT"): 0.0, ("hadron_shower", "HADRONIC_LOCAL_FRACTION"): 0.0,
    ("hadron_shower", "PION_MEAN_LOSS_OVER_MIN"): 1.0,
}


def broad_tables(reference: dict, n_fast: int) -> tuple[str, str, dict[str, float]]:
    """Markdown: the scores per split before/after the broad fit, and every judged validation cell after it;
    plus a flat dict of the numbers (``before_`` / ``after_`` prefixes)."""
    from detopt.simulation.geant4 import fidelity as fd

    points = reference["points"]
    with patched(BEFORE_BROAD):
        before = fd.judge(points, broad_fast(reference, points, n_fast))
    after = fd.judge(points, broad_fast(reference, points, n_fast))
    numbers: dict[str, float] = {}
    for tag, (cells, rows) in (("before", before), ("after", after)):
        for split in ("calibration", "validation"):
            numbers |= {f"{tag}_{k}": v for k, v in fd.scores(cells, rows, split).items()}
    lines = ["| | calibration designs: before | after | validation designs: before | after |", "|---|---:|---:|---:|---:|"]
    labels = (("judged_cells", "judged cells", "{:.0f}"),
              ("cells_passing_fraction", "cells: mean within 10% and width within 25%", "{:.0%}"),
              ("cells_mean_within_10pct_fraction", "cells: mean within 10%", "{:.0%}"),
              ("cells_width_within_25pct_fraction", "cells: width within 25%", "{:.0%}"),
              ("rows", "rows (design x particle x energy)", "{:.0f}"),
              ("rows_total_passing_fraction", "rows: total mean within 5% and width within 25%", "{:.0%}"),
              ("rows_total_mean_within_5pct_fraction", "rows: total mean within 5%", "{:.0%}"),
              ("rows_total_width_within_25pct_fraction", "rows: total width within 25%", "{:.0%}"))
    for key, label, fmt in labels:
        vals = [numbers[f"{t}_{s}_{key}"] for s in ("calibration", "validation") for t in ("before", "after")]
        lines.append(f"| {label} | " + " | ".join(fmt.format(v) for v in vals) + " |")
    cells = ["| design | beam | layer | Geant4 mean +- std (GeV) [stat. err.] | fast/G4 mean before, after | "
             "fast/G4 width before, after | passes after |", "|---|---|---|---:|---:|---:|---|"]
    for b, a in zip(before[0], after[0]):
        if a.split != "validation":
            continue
        err = a.geant4_std / np.sqrt(a.n) / a.geant4_mean
        cells.append(f"| {a.design} | {a.particle} {a.energy_gev:g} GeV | {a.layer} ({a.material}) | "
                     f"{a.geant4_mean:.3g} +- {a.geant4_std:.2g} [{err:.1%}] | {b.mean_ratio:.2f}, {a.mean_ratio:.2f} | "
                     f"{b.width_ratio:.2f}, {a.width_ratio:.2f} | {'yes' if a.passes else 'no'} |")
    cells.append("")
    cells.append("| design | beam | Geant4 total mean +- std (GeV) | fast/G4 mean before, after | fast/G4 width before, after | passes after |")
    cells.append("|---|---|---:|---:|---:|---|")
    for b, a in zip(before[1], after[1]):
        if a.split == "validation":
            cells.append(f"| {a.design} | {a.particle} {a.energy_gev:g} GeV | {a.geant4_mean:.4g} +- {a.geant4_std:.2g} | "
                         f"{b.mean_ratio:.3f}, {a.mean_ratio:.3f} | {b.width_ratio:.2f}, {a.width_ratio:.2f} | "
                         f"{'yes' if a.passes else 'no'} |")
    return "\n".join(lines), "\n".join(cells), numbers


def broad_figure(reference: dict, n_fast: int, out: Path) -> None:
    """Per validation design: mean deposit per layer (the longitudinal profile in layers), Geant4 against the
    fast simulator before and after the broad fit, photons and pi+ at the design's higher energy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from detopt.atomic import atomic_path
    from detopt.report.figures import hep_style

    points = [p for p in reference["points"] if p["split"] == "validation"]
    top = {}
    for p in points:
        top[p["design"]] = max(top.get(p["design"], 0.0), p["energy_gev"])
    points = [p for p in points if p["energy_gev"] == top[p["design"]]]
    with patched(BEFORE_BROAD):
        before = broad_fast(reference, points, n_fast)
    after = broad_fast(reference, points, n_fast)
    designs = list(dict.fromkeys(p["design"] for p in points))

    @hep_style
    def draw() -> Path:
        fig, axes = plt.subplots(2, (len(designs) + 1) // 2, figsize=(3.2 * ((len(designs) + 1) // 2), 7.5),
                                 squeeze=False)
        for ax, design in zip(axes.flat, designs):
            for p, fb, fa in zip(points, before, after):
                if p["design"] != design:
                    continue
                x = np.arange(len(p["layers"]))
                colour = "C0" if p["particle"] == "gamma" else "C3"
                g = np.maximum(np.asarray(p["geant4"]["mean"]), 1e-5)
                err = np.asarray(p["geant4"]["std"]) / np.sqrt(p["n"])
                ax.errorbar(x, g, yerr=np.minimum(err, 0.9 * g), fmt="o", color=colour, ms=4,
                            label=f"Geant4 {p['particle']}")
                ax.plot(x, np.maximum(fb["mean"], 1e-5), ":", color=colour, label="fast, before")
                ax.plot(x, np.maximum(fa["mean"], 1e-5), "--", color=colour, label="fast, after")
                layers = p["layers"]
            ax.set_yscale("log")
            ax.set_xticks(x, [f"{m}\n{t:g}{'*' if a else ''}" for m, t, a in layers], fontsize=6)
            ax.set_title(f"{design}, {top[design]:g} GeV", fontsize=9)
            ax.set_ylabel("mean deposit (GeV)", fontsize=8)
        for ax in list(axes.flat)[len(designs):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=6)
        fig.suptitle("Validation designs: mean deposit per layer (* active; thickness in cm)", fontsize=11)
        fig.tight_layout()
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        return out

    draw()


#: The parameter values before the calibration (the foundation issue's simulator), for the before/after table.
UNCALIBRATED = {
    ("em_shower", "CONTAINMENT_SCALE"): 1.0, ("em_shower", "FLUCTUATION_SCALE"): 1.0,
    ("em_shower", "RADIAL_CORE_SCALE"): 0.6, ("em_shower", "RADIAL_TAIL_SCALE"): 0.6,
    ("hadron_shower", "HADRONIC_VISIBLE_FRACTION"): 0.65, ("hadron_shower", "HADRONIC_DEPTH_SCALE"): 1.0,
    ("hadron_shower", "HADRONIC_RADIUS_LAMBDA"): 0.23, ("hadron_shower", "HADRONIC_SHAPE_SPREAD"): 0.15,
    ("hadron_shower", "PION_EM_RADIAL_SCALE"): 1.0,
}


def _verdict(gm: float, gs: float, fm: float, fs: float, tol_m: float, tol_s: float) -> str:
    if max(gm, fm) < 0.005:
        return "-"
    ok = abs(fm / gm - 1) <= tol_m and abs(fs / gs - 1) <= tol_s if gm > 0 and gs > 0 else False
    return "yes" if ok else "no"


def before_after(reference: dict, n_fast: int) -> tuple[str, str, dict[str, float]]:
    """Markdown tables (scintillator layers; blocks) of Geant4 against the fast simulator before and after
    the calibration, same seeds, and the counts of rows meeting the goal."""
    with patched(UNCALIBRATED):
        before = fast_statistics(reference, n_fast)
    after = fast_statistics(reference, n_fast)
    tol_m, tol_s = reference["mean_tolerance"], reference["width_tolerance"]
    rows = ["| design | beam | layer | Geant4 mean +- std (GeV) [stat. err.] | before: fast/G4 mean, std | "
            "after: fast mean +- std (GeV) | after: fast/G4 mean | after: fast/G4 std | goal met before / after |",
            "|---|---|---|---:|---:|---:|---:|---:|---|"]
    counts = {"judged_rows_before": 0, "judged_rows_after": 0, "goal_met_before": 0, "goal_met_after": 0}
    for case, fb, fa in zip(reference["cases"], before, after):
        if case["kind"] != "layers":
            continue
        g = case["geant4"]
        for i, active in enumerate(case["active"]):
            if not active:
                continue
            gm, gs = g["mean"][i], g["std"][i]
            vb = _verdict(gm, gs, fb["mean"][i], fb["std"][i], tol_m, tol_s)
            va = _verdict(gm, gs, fa["mean"][i], fa["std"][i], tol_m, tol_s)
            for tag, v in (("before", vb), ("after", va)):
                counts[f"judged_rows_{tag}"] += v != "-"
                counts[f"goal_met_{tag}"] += v == "yes"
            if vb == "-" and va == "-":
                continue
            err = f"{gs / np.sqrt(case['n_geant4']) / gm:.1%}" if gm > 0 else "-"

            def ratio(a: float, b: float) -> str:
                return f"{a / b:.2f}" if b > 0 else "-"

            rows.append(
                f"| {case['design']} | {case['particle']} {case['energy_gev']:g} GeV | {case['layers'][i]} "
                f"({case['materials'][i]}) | {gm:.3g} +- {gs:.2g} [{err}] | {ratio(fb['mean'][i], gm)}, "
                f"{ratio(fb['std'][i], gs)} | {fa['mean'][i]:.3g} +- {fa['std'][i]:.2g} | "
                f"{ratio(fa['mean'][i], gm)} | {ratio(fa['std'][i], gs)} | {vb} / {va} |")
    blocks = ["| block | beam | containment G4 / before / after | resolution G4 / before / after | "
              "depth 50% (cm) G4 / before / after | depth 90% (cm) G4 / before / after | "
              "within 0.8 cm (PbWO4) or 2 cm (Fe), % G4 / before / after | within 3.2 cm or 8 cm, % |",
              "|---|---|---|---|---|---|---|---|"]
    for case, fb, fa in zip(reference["cases"], before, after):
        if case["kind"] != "block":
            continue
        g = case["geant4"]
        cum = [np.cumsum(x["radial_fraction"]) * 100 for x in (g, fb, fa)]
        blocks.append(
            f"| {case['block']} | {case['particle']} {case['energy_gev']:g} GeV | "
            + " | ".join(" / ".join(f"{x[k]:{fmt}}" for x in (g, fb, fa))
                         for k, fmt in (("containment", ".3f"), ("resolution", ".3f"), ("depth50_cm", ".1f"),
                                        ("depth90_cm", ".1f")))
            + f" | {cum[0][1]:.0f} / {cum[1][1]:.0f} / {cum[2][1]:.0f} | {cum[0][3]:.0f} / {cum[1][3]:.0f} / "
            f"{cum[2][3]:.0f} |")
    return "\n".join(rows), "\n".join(blocks), counts


def profile_figure(reference: dict, n_fast: int, out: Path) -> None:
    """Longitudinal and radial profiles in the homogeneous blocks: Geant4, fast before, fast after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from detopt.atomic import atomic_path
    from detopt.simulation.geant4.compare import BLOCKS

    cases = [c for c in reference["cases"] if c["kind"] == "block" and c["energy_gev"] in (2.0, 20.0)]
    sub = {**reference, "cases": cases}
    with patched(UNCALIBRATED):
        before = fast_statistics(sub, n_fast)
    after = fast_statistics(sub, n_fast)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, block in enumerate(b[0] for b in BLOCKS):
        grid = next(b[4] for b in BLOCKS if b[0] == block)
        for case, fb, fa in zip(cases, before, after):
            if case["block"] != block:
                continue
            z = grid.depth_edges_cm(case["depth_cm"])
            r = grid.radial_edges_cm(50.0)
            colour = "C0" if case["energy_gev"] == 2.0 else "C3"
            label = f"{case['particle']} {case['energy_gev']:g} GeV"
            for ax, key, edges in ((axes[0, col], "longitudinal_fraction", z), (axes[1, col], "radial_fraction", r)):
                width = np.diff(edges)
                for stats, style, tag in ((case["geant4"], "-", "Geant4"), (fb, ":", "fast, before"),
                                          (fa, "--", "fast, calibrated")):
                    ax.stairs(np.asarray(stats[key]) / width, edges, color=colour, linestyle=style,
                              label=f"{label}, {tag}")
        axes[0, col].set(title=block, xlabel="depth (cm)", ylabel="fraction of the deposit per cm", yscale="log")
        axes[1, col].set(xlabel="radius (cm)", ylabel="fraction per cm of radius", yscale="log", xscale="log")
        axes[0, col].legend(fontsize=7)
    fig.suptitle("Fast simulator vs Geant4 (substitute data), mean profiles")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("extra-geant4", help="extra Geant4 pion events on the layered designs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir")
    p = sub.add_parser("reference", help="store the Geant4 reference table")
    p.add_argument("--comparison", type=Path, required=True, help="output of detopt.simulation.geant4.compare")
    p.add_argument("--extra", type=Path, help="output of extra-geant4")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("fit", help="fit the fast simulator's free parameters to the stored reference")
    p.add_argument("--reference", type=Path, default=Path("docs/data/geant4_reference.json"))
    p.add_argument("--particle", choices=("gamma", "pi+", "both"), default="both")
    p.add_argument("--n-fast", type=int, default=3000, help="fast-simulator events per case")
    p.add_argument("--max-evaluations", type=int, default=150)
    p.add_argument("--start", nargs="*", default=[], metavar="MODULE.NAME=VALUE",
                   help="start the fit from these values instead of the ones in the source")
    p = sub.add_parser("fit-broad", help="fit to the calibration designs of the broad reference")
    p.add_argument("--reference", type=Path, default=Path("docs/data/geant4_broad_reference.json"))
    p.add_argument("--particle", choices=("gamma", "pi+", "both"), default="both")
    p.add_argument("--n-fast", type=int, default=1500, help="fast-simulator events per point")
    p.add_argument("--max-evaluations", type=int, default=200, help="per start")
    p.add_argument("--starts", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    p.add_argument("--json", type=Path, help="write every start's result here")
    p.add_argument("--blocks", type=Path, default=Path("docs/data/geant4_reference.json"),
                   help="the first reference (blocks, profiles), fitted together with the broad one")
    p = sub.add_parser("broad-table", help="scores before/after on calibration and validation designs (markdown)")
    p.add_argument("--reference", type=Path, default=Path("docs/data/geant4_broad_reference.json"))
    p.add_argument("--n-fast", type=int, default=4000)
    p.add_argument("--figure", type=Path, help="write the validation profile figure here (PNG)")
    p.add_argument("--json", type=Path, help="write the scores here")
    p = sub.add_parser("table", help="before/after tables and profile figure (markdown on stdout)")
    p.add_argument("--reference", type=Path, default=Path("docs/data/geant4_reference.json"))
    p.add_argument("--n-fast", type=int, default=20000)
    p.add_argument("--figure", type=Path, help="write the profile figure here (PNG)")
    p.add_argument("--json", type=Path, help="write the goal counts here")
    args = parser.parse_args(argv)
    if args.command == "table":
        reference = json.loads(args.reference.read_text(encoding="utf-8"))
        layers, blocks, counts = before_after(reference, args.n_fast)
        print(layers, blocks, json.dumps(counts), sep="\n\n")
        if args.json:
            from detopt.atomic import write_text_atomic

            write_text_atomic(args.json, json.dumps(counts, indent=1) + "\n")
        if args.figure:
            profile_figure(reference, min(args.n_fast, 5000), args.figure)
        return 0
    if args.command == "broad-table":
        reference = json.loads(args.reference.read_text(encoding="utf-8"))
        summary, cells, numbers = broad_tables(reference, args.n_fast)
        print(summary, cells, sep="\n\n")
        if args.json:
            from detopt.atomic import write_text_atomic

            write_text_atomic(args.json, json.dumps(numbers, indent=1) + "\n")
        if args.figure:
            broad_figure(reference, args.n_fast, args.figure)
        return 0
    if args.command == "fit-broad":
        reference = json.loads(args.reference.read_text(encoding="utf-8"))
        blocks = json.loads(args.blocks.read_text(encoding="utf-8"))
        best, runs = {}, {}
        if args.particle in ("gamma", "both"):
            found, runs["gamma"] = fit_broad(reference, BROAD_EM_PARAMETERS, "gamma", args.n_fast,
                                             args.max_evaluations, args.starts, blocks, args.seed)
            best |= found
        with patched(best):
            if args.particle in ("pi+", "both"):
                found, runs["pi+"] = fit_broad(reference, BROAD_HADRON_PARAMETERS, "pi+", args.n_fast,
                                               args.max_evaluations, args.starts, blocks, args.seed)
                best |= found
        out = {f"{m}.{n}": round(v, 4) for (m, n), v in best.items()}
        print(json.dumps(out, indent=1))
        if args.json:
            from detopt.atomic import write_text_atomic

            write_text_atomic(args.json, json.dumps({"best": out, "runs": runs}, indent=1) + "\n")
        return 0
    if args.command == "extra-geant4":
        extra_geant4(args.out, args.data_dir)
    elif args.command == "reference":
        from detopt.atomic import write_text_atomic

        comparison = json.loads(args.comparison.read_text(encoding="utf-8"))
        extra = json.loads(args.extra.read_text(encoding="utf-8")) if args.extra else None
        write_text_atomic(args.out, json.dumps(build_reference(comparison, extra), indent=1) + "\n")
    elif args.command == "fit":
        reference = json.loads(args.reference.read_text(encoding="utf-8"))
        start = {tuple(kv.split("=")[0].split(".")): float(kv.split("=")[1]) for kv in args.start}
        best: dict = {}
        with patched(start):
            if args.particle in ("gamma", "both"):
                best |= fit(reference, EM_PARAMETERS, "gamma", args.n_fast, args.max_evaluations)
            with patched(best):
                if args.particle in ("pi+", "both"):
                    best |= fit(reference, HADRON_PARAMETERS, "pi+", args.n_fast, args.max_evaluations)
        print(json.dumps({f"{m}.{n}": round(v, 4) for (m, n), v in best.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
