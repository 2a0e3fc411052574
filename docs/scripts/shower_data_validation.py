"""Numbers of the shower data sets and of the simulation side of the shower-surrogate evaluation.

Writes ``docs/shower_data.md`` (tables), ``docs/data/shower_data.json`` (flat numbers) and
``docs/figures/shower_data_*.png``::

    OMP_NUM_THREADS=1 .venv/bin/python docs/scripts/shower_data_validation.py           # full run (a few min)
    OMP_NUM_THREADS=1 .venv/bin/python docs/scripts/shower_data_validation.py --quick   # < 1 min, prints only

Sections: (1) speed of `generate_shower_dataset` and of its Parquet files; (2) the observables of
`detopt.evaluation.observables` on built-in showers against the PDG shower maximum and Moliere
containment; (3) the floors of the evaluation metrics: two independent simulations of the same
conditions compared as if one were the surrogate (the best any surrogate can score with that many
showers); (4) finite-difference gradients of the design utilities with and without common random
numbers (CRN) at the designs `detopt shower gradients` draws by default. Every draw is seeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from detopt.atomic import write_text_atomic
from detopt.detector import get_material
from detopt.evaluation import gradients as grad
from detopt.evaluation import metrics
from detopt.evaluation import observables as obs
from detopt.evaluation.classifier import classifier_auc
from detopt.simulation import GEOMETRY_A, GEOMETRY_B, ShowerCondition, ShowerDataset, VoxelGrid, generate_shower_dataset
from detopt.simulation.shower_dataset import draw_shower_conditions, simulate_condition

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "shower_data.md"
JSON = REPO / "docs" / "data" / "shower_data.json"
FIGURES = REPO / "docs" / "figures"
GRID = VoxelGrid(n_depth=24, n_radial=16)


def table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def speed(quick: bool, numbers: dict[str, float], tmp: Path) -> str:
    n_cond, n_per = (20, 500) if quick else (100, 500)
    rows = []
    for geo in (GEOMETRY_A, GEOMETRY_B):
        start = time.perf_counter()
        ds = generate_shower_dataset(geo, n_conditions=n_cond, showers_per_condition=n_per, grid=GRID, seed=0)
        sec = time.perf_counter() - start
        path = tmp / f"speed_{geo.name}.parquet"
        t0 = time.perf_counter()
        ds.to_parquet(path)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        ShowerDataset.from_parquet(path)
        t_read = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        ratio = ds.maps.sum(axis=(1, 2)) / ds.column("energy_gev")
        key = f"geometry_{geo.name}"
        numbers.update({
            f"{key}_showers": len(ds), f"{key}_generate_s": sec, f"{key}_showers_per_s": len(ds) / sec,
            f"{key}_parquet_write_s": t_write, f"{key}_parquet_read_s": t_read, f"{key}_parquet_mb": size_mb,
            f"{key}_mean_map_energy_over_beam": float(ratio.mean()),
        })
        rows.append([geo.name, len(ds), round(sec, 2), int(len(ds) / sec), round(t_write, 2), round(t_read, 2),
                     round(size_mb, 1), float(ratio.mean())])
    return table(["geometry", "showers", "generate s", "showers/s", "write s", "read s", "file MB",
                  "mean map energy / beam"], rows)


def physics(quick: bool, numbers: dict[str, float]) -> str:
    n = 300 if quick else 1000
    grid = VoxelGrid(n_depth=48, n_radial=16)
    rows = []
    for material in ("PbWO4", "Pb", "W", "Fe", "CsI"):
        mat = get_material(material)
        x0, rm = mat.radiation_length_cm, mat.moliere_radius_cm
        for energy in (10.0, 50.0):
            cond = ShowerCondition("e-", energy, material, 24 * x0, 4 * rm)
            maps = simulate_condition(GEOMETRY_A, cond, n, grid, seed=int(energy))
            depth = np.linspace(0.0, cond.depth_cm, grid.n_depth + 1)
            rings = cond.r_max_cm * (np.arange(grid.n_radial + 1) / grid.n_radial) ** grid.radial_power
            t_max = np.log(energy * 1e3 / mat.critical_energy_mev) - 0.5
            peak = obs.bin_centres(depth)[np.argmax(obs.energy_per_slice(maps).mean(axis=0))] / x0
            centre = float(obs.longitudinal_centre(maps, depth).mean() / x0)
            radius = float(obs.energy_weighted_radius(maps, rings).mean() / rm)
            c1 = float(obs.lateral_containment(maps, rings, rm).mean())
            c35 = float(obs.lateral_containment(maps, rings, 3.5 * rm).mean())
            numbers[f"{material}_e{energy:g}_peak_minus_tmax_x0"] = float(peak - t_max)
            numbers[f"{material}_e{energy:g}_within_1rm"] = c1
            rows.append([material, energy, round(t_max, 2), round(float(peak), 2), round(centre, 2), round(radius, 3),
                         round(c1, 3), round(c35, 4)])
    return table(["material", "E GeV", "PDG t_max X0", "profile peak X0 (0.5 X0 slices)", "<z> X0", "<r> / R_M",
                  "within 1 R_M", "within 3.5 R_M"], rows)


def floors(quick: bool, numbers: dict[str, float], figures: Path | None) -> str:
    """Two independent simulations of the same held-out-like conditions compared as sim vs 'surrogate'."""
    rows = []
    for n_per in ((500,) if quick else (500, 2000)):
        kw = dict(n_conditions=10 if quick else 20, showers_per_condition=n_per, grid=GRID,
                  energy_range=(10.0, 100.0))
        # Same conditions, different simulator seeds: the conditions are drawn from the seed's first
        # child, so pass them explicitly to the second set.
        a = generate_shower_dataset("A", seed=1, **kw)
        conds = [ShowerCondition(**{k: c[k] for k in ("particle", "energy_gev", "material", "depth_cm", "r_max_cm")})
                 for c in a.metadata["conditions"]]
        b = generate_shower_dataset("A", conditions=conds, seed=2, showers_per_condition=n_per, grid=GRID)
        np.testing.assert_array_equal(a.conditions, b.conditions)
        sa, sb = obs.dataset_observables(a), obs.dataset_observables(b)
        _, ids = a.condition_ids()
        errs = metrics.compare_observables(sa, ids, sb, ids)
        errs_q68 = metrics.compare_observables(sa, ids, sb, ids, width_kind="q68")
        sp_cond = np.mean([metrics.separation_power(sa["total_energy_gev"][ids == c], sb["total_energy_gev"][ids == c])
                           for c in np.unique(ids)])
        sp_pooled = metrics.separation_power(sa["energy_ratio"], sb["energy_ratio"])
        feats = ["energy_ratio", "radius_cm", "dispersion_cm", "long_centre_cm", "long_spread_cm"]
        auc = classifier_auc({k: sa[k] for k in feats}, {k: sb[k] for k in feats}, seed=0).auc
        for name in ("total_energy_gev", "radius_cm", "dispersion_cm", "long_centre_cm"):
            numbers[f"floor_n{n_per}_{name}_rel_rmse_mean"] = errs[name].rmse_mean
            numbers[f"floor_n{n_per}_{name}_rel_rmse_width"] = errs[name].rmse_width
            numbers[f"floor_n{n_per}_{name}_rel_rmse_width_q68"] = errs_q68[name].rmse_width
        numbers.update({f"floor_n{n_per}_sep_power_total_energy_per_condition": float(sp_cond),
                        f"floor_n{n_per}_sep_power_energy_ratio_pooled": sp_pooled, f"floor_n{n_per}_auc": auc})
        if n_per == 500 and figures is not None:
            from detopt.evaluation.plots import plot_distribution, plot_profile

            c = ids == ids[0]
            first = a.metadata["conditions"][0]
            label = f"{first['material']} {first['particle']} {first['energy_gev']:.0f} GeV"
            labels = ("simulation, seed 1", "simulation, seed 2 (as 'surrogate')")
            plot_distribution(sa["total_energy_gev"][c], sb["total_energy_gev"][c], figures / "shower_data_floor_energy.png",
                              xlabel="deposited energy [GeV]", labels=labels, title=f"{label}, 500 showers each")
            plot_profile(obs.energy_per_slice(a.maps[c]), obs.energy_per_slice(b.maps[c]), a.depth_edges_cm()[c][0],
                         figures / "shower_data_floor_depth_profile.png", xlabel="depth [cm]", labels=labels,
                         title=f"{label}, 500 showers each", logy=True)
        rows.append([n_per, len(np.unique(ids)), *(
            f"{100 * errs[k].rmse_mean:.2f}% / {100 * errs[k].rmse_width:.2f}% / {100 * errs_q68[k].rmse_width:.2f}%"
            for k in ("total_energy_gev", "radius_cm", "dispersion_cm")),
            float(sp_cond), float(sp_pooled), round(auc, 3)])
    return table(["showers / condition", "conditions", "E_dep: mean / width std / width q68", "<r>: same",
                  "dispersion: same", "S(E_dep) per condition (30 bins)", "S(E_dep/E) pooled",
                  "AUC sim vs sim"], rows)


def crn(quick: bool, numbers: dict[str, float]) -> str:
    n_designs, n_showers, repeats = (2, 300, 4) if quick else (5, 1000, 6)
    conds = draw_shower_conditions(GEOMETRY_A, n_designs, np.random.default_rng(0), particles=["e-"], energies_gev=[50.0])
    rows = []
    params = ["depth_cm", "r_max_cm"]
    for k, cond in enumerate(conds):
        mat = get_material(cond.material)
        simulate = grad.shower_design_simulator(GEOMETRY_A, cond, n_showers, GRID)
        for name in grad.UTILITIES:
            fn = grad.make_utility(name, n_depth=GRID.n_depth, n_radial=GRID.n_radial, radius_cm=mat.moliere_radius_cm)
            design = {"depth_cm": cond.depth_cm, "r_max_cm": cond.r_max_cm, "energy_gev": cond.energy_gev}
            kw = dict(parameters=params, relative_step=0.1, n_repeats=repeats, seed=k)
            with_crn = grad.finite_difference_utility_gradient(fn, simulate, design, **kw)
            without = grad.finite_difference_utility_gradient(fn, simulate, design, common_random_numbers=False, **kw)
            ratio = grad.crn_variance_ratio(without, with_crn)
            for j, p in enumerate(params):
                numbers[f"design{k}_{name}_{p}_crn_variance_ratio"] = float(ratio[j])
                numbers[f"design{k}_{name}_{p}_fd_significance"] = float(abs(with_crn.mean[j]) / with_crn.stderr[j])
            rows.append([
                k, f"{cond.material} {cond.depth_cm / mat.radiation_length_cm:.1f} X0 {cond.r_max_cm / mat.moliere_radius_cm:.2f} R_M",
                name, round(with_crn.utility, 4),
                *(f"{with_crn.mean[j]:.3g} +- {with_crn.stderr[j]:.2g}" for j in range(2)),
                *(f"{ratio[j]:.3g}" for j in range(2)),
            ])
    # The same design and utility at several steps h: with CRN the error stays, without it grows as 1/h.
    cond = conds[0]
    scan_repeats = 6 if quick else 20
    simulate = grad.shower_design_simulator(GEOMETRY_A, cond, 500, GRID)
    fn = grad.make_utility("containment", n_depth=GRID.n_depth, n_radial=GRID.n_radial)
    e_ref = simulate({"depth_cm": cond.depth_cm}, 5).sum(axis=(1, 2))
    e_same = simulate({"depth_cm": 1.01 * cond.depth_cm}, 5).sum(axis=(1, 2))
    e_other = simulate({"depth_cm": 1.01 * cond.depth_cm}, 6).sum(axis=(1, 2))
    numbers["crn_deposit_correlation_same_seed"] = float(np.corrcoef(e_ref, e_same)[0, 1])
    numbers["crn_deposit_correlation_other_seed"] = float(np.corrcoef(e_ref, e_other)[0, 1])
    for h in (0.01, 0.03, 0.1):
        kw = dict(parameters=["depth_cm"], relative_step=h, n_repeats=scan_repeats, seed=100)
        design = {"depth_cm": cond.depth_cm, "energy_gev": cond.energy_gev}
        with_crn = grad.finite_difference_utility_gradient(fn, simulate, design, **kw)
        without = grad.finite_difference_utility_gradient(fn, simulate, design, common_random_numbers=False, **kw)
        ratio = float(grad.crn_variance_ratio(without, with_crn)[0])
        numbers[f"design0_containment_depth_h{h:g}_crn_variance_ratio"] = ratio
        rows.append([0, f"h = {h:g} depth", "containment", round(with_crn.utility, 4),
                     f"CRN {with_crn.mean[0]:.3g} +- {with_crn.stderr[0]:.2g}",
                     f"no CRN {without.mean[0]:.3g} +- {without.stderr[0]:.2g}", f"{ratio:.3g}", "-"])
    all_ratios = [v for key, v in numbers.items() if key.endswith("_crn_variance_ratio") and "_h" not in key]
    numbers["crn_variance_ratio_min"] = float(min(all_ratios))
    numbers["crn_variance_ratio_median"] = float(np.median(all_ratios))
    return table(["design", "detector (e-, 50 GeV)", "utility", "U", "dU/d depth_cm (CRN)", "dU/d r_max_cm (CRN)",
                  "var ratio no-CRN / CRN: depth", "r_max"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer showers; prints, writes nothing")
    args = parser.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(1)
    numbers: dict[str, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sections = {
            "speed": speed(args.quick, numbers, Path(tmp)),
            "physics": physics(args.quick, numbers),
            "floors": floors(args.quick, numbers, None if args.quick else FIGURES),
            "crn": crn(args.quick, numbers),
        }
    numbers["total_runtime_s"] = time.perf_counter() - started
    for name, text in sections.items():
        print(f"\n## {name}\n{text}")
    print(f"\nruntime {numbers['total_runtime_s']:.0f} s")
    if args.quick:
        return 0
    doc = DOC_TEMPLATE.format(**sections, runtime=numbers["total_runtime_s"], numpy=np.__version__,
                              corr_same=numbers["crn_deposit_correlation_same_seed"],
                              corr_other=numbers["crn_deposit_correlation_other_seed"])
    write_text_atomic(DOC, doc)
    JSON.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(JSON, json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DOC} and {JSON}")
    return 0


DOC_TEMPLATE = """# Shower data sets and the simulation side of the surrogate evaluation

Generated by `OMP_NUM_THREADS=1 .venv/bin/python docs/scripts/shower_data_validation.py` (numpy {numpy},
{runtime:.0f} s on a shared 2-core machine; every draw is seeded, so the physics numbers reproduce exactly;
the timings depend on the load). Flat numbers: `docs/data/shower_data.json`.

## Data sets (`detopt.simulation.shower_dataset`)

Maps are `(n, n_depth, n_radial)` float32 GeV per voxel (equal depth slices x radial rings with
edges r_max (k/n)^2). Each shower carries the physical conditions `SHOWER_CONDITIONS`: beam energy,
particle one-hot, the material's X0, Moliere radius, critical energy and density (effective values for
a sampling calorimeter: PDG mixture rules, which reduce to thickness-weighted harmonic means of X0 and
R_M in cm), depth, radial extent and MIP sampling fraction.

* `GEOMETRY_A`: homogeneous blocks of Pb, W, Fe, Cu, PbWO4, PbF2, BGO, CsI, 15-30 X0 deep, cell
  radius 1.5-4 R_M (area-equivalent circle of the square face; the rings span the cell).
* `GEOMETRY_B`: Pb / polystyrene cells (2 : 1 in thickness, one cell per depth slice), same ranges
  in effective X0 and R_M; the maps hold the scintillator's energy only (sampling fraction ~7.5%).

Speed of `generate_shower_dataset` (24 x 16 voxels, 500 showers per random condition, built-in
simulator) and of the Parquet files:

{speed}

## Observables against PDG shower physics

Electron showers in blocks of 24 X0 and 4 R_M (48 slices of 0.5 X0, 16 rings); t_max = ln(E/E_c) - 0.5
(PDG). The energy-weighted centre <z> lies behind the maximum (the Gamma profile's tail).

{physics}

## Floors of the evaluation metrics

Two independent simulations (different seeds) of the same random conditions of geometry A with beam
energies 10-100 GeV, compared with `detopt.evaluation` exactly as a surrogate is: this is what a
perfect surrogate scores with that many showers per condition. Relative RMSE over conditions of the
mean and width errors (width as the standard deviation, and as half the central 68% interval, `q68`,
which a few late, leaking showers in the tail do not dominate); separation power of the deposited energy (30 equal bins over both samples) per
condition (mean) and pooled as E_dep / E_beam; classifier AUC on the five high-level observables.

{floors}

One condition of the 500-shower row, drawn with `detopt.evaluation.plots` (ratio panels: second / first):

![deposited energy, two simulations](figures/shower_data_floor_energy.png)
![depth profile, two simulations](figures/shower_data_floor_depth_profile.png)

## Finite differences of design utilities: common random numbers

`finite_difference_utility_gradient` at the five designs `detopt shower gradients` draws by default
(geometry A, e-, 50 GeV, seed 0), 1000 showers per evaluation, central differences with h = 0.1 theta,
6 seeds. Utilities (`detopt.evaluation.gradients`): `energy_resolution` = sigma(E_dep)/<E_dep>;
`containment` = <E_dep>/E_beam; `lateral_containment` = mean energy fraction within one Moliere
radius of the axis. The last two columns are the variance of the FD estimate with independent seeds
at theta +- h over that with the same seed (CRN).

{crn}

The built-in simulator draws the shower shape of an event (GFlash ln T, ln alpha, photon conversion
depth) from streams that do not depend on the geometry, so the event-level quantities (deposited
energy and its fluctuations) are exactly common to theta +- h; the voxel-level sampling fluctuations
are Gamma draws whose count of uniforms depends on their mean (rejection sampling), so they are only
partly common, which is why CRN gains far less for `lateral_containment` than for the energy utilities.
With CRN what remains is the shower-to-shower spread of each shower's own derivative (large for the
depth: how much a shower leaks out of the back varies strongly from shower to shower), which does not
shrink with h, while without CRN the variance grows as 1/h^2: the ratios scale roughly as 1/h^2.
The last three rows show it for design 0 (containment, depth only) at h = 1%, 3% and 10% of the depth
(500 showers, 20 seeds). Each ratio is a ratio of two variances estimated from a few seeds each, so
it is itself uncertain by a factor of a few (6 seeds: a 90% range of about 0.2x-5x). The per-shower
deposits of design 0 at two depths 1% apart correlate at {corr_same:.5f} with the same seed and at
{corr_other:.3f} with different seeds: the stream is shared.
"""


if __name__ == "__main__":
    sys.exit(main())
