"""Per-condition width ratios (surrogate / simulation) of total energy, radius and dispersion.

Reads the JSON files that ``detopt shower evaluate`` writes (their ``per_condition`` rows) and
draws, for each, the ratio of the generated to the simulated standard deviation in every held-out
condition; prints a Markdown table of the RMS relative width error and the ratio's range.

    python docs/scripts/shower_width_per_condition.py \\
        "linear normalization, DDIM 50=docs/data/shower_widths.json:ev_base_d50" \\
        "likelihood normalization, DDIM 50=docs/data/shower_widths.json:ev_mlpres4k_d50" \\
        "likelihood, 200 epochs, DPM-Solver++ 50=docs/data/shower_widths.json:ev_mlpres4k_long_dpm50" \\
        --out docs/figures/shower_width_per_condition.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

OBSERVABLES = {"total_energy_gev": "total energy", "radius_cm": "radius", "dispersion_cm": "dispersion"}


def ratios(source: str) -> dict[str, np.ndarray]:
    """Generated / simulated width per condition, per observable, in the order of the file's rows.

    ``source``: an evaluate JSON, or ``FILE:ENTRY`` for one entry of a collected file such as
    ``docs/data/shower_widths.json``.
    """
    path, _, entry = source.partition(":")
    document = json.loads(Path(path).read_text())
    rows = (document[entry] if entry else document)["per_condition"]
    return {k: np.array([1.0 + r[f"{k}_rel_width_error"] for r in rows]) for k in OBSERVABLES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=PATH of an evaluate JSON, or LABEL=FILE:ENTRY")
    parser.add_argument("--out", type=Path, required=True, help="figure (PNG)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    runs = [(label, ratios(source)) for label, source in (r.split("=", 1) for r in args.runs)]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), sharey=True)
    print("| run | " + " | ".join(f"{v}: RMS width error [min, max ratio]" for v in OBSERVABLES.values()) + " |")
    print("|---|" + "---|" * len(OBSERVABLES))
    for label, r in runs:
        cells = []
        for ax, (key, name) in zip(axes, OBSERVABLES.items()):
            order = np.argsort(r[key])
            ax.plot(np.arange(r[key].size), r[key][order], "o-", label=label, markersize=4)
            ax.set_xlabel("held-out condition (sorted)", fontsize=16)
            ax.set_title(name, fontsize=18)
            cells.append(f"{100 * np.sqrt(np.mean((r[key] - 1) ** 2)):.1f}% [{r[key].min():.2f}, {r[key].max():.2f}]")
        print(f"| {label} | " + " | ".join(cells) + " |")
    for ax in axes:
        ax.axhline(1.0, color="k", lw=1)
        ax.axhspan(0.9, 1.1, color="0.9", zorder=0)
    axes[0].set_ylabel("width ratio, surrogate / sim.", fontsize=16)
    axes[0].legend(fontsize=11, loc="upper left")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
