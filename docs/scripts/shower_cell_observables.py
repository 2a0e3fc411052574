"""Cell-level observables of generated showers against the simulation, condition by condition.

The share of the shower in its hottest voxel and the number of voxels holding more than 0.1% of
it: what single-cell fluctuations decide (and the shower observables of ``detopt shower evaluate``
do not test). For every model, the median and RMS over the test conditions of the relative error
of the mean and of the width (standard deviation), DPM-Solver++ with ``--steps`` steps.

    python docs/scripts/shower_cell_observables.py DIR/data/A32_test.parquet DIR/models/pca64L DIR/models/unetL
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from detopt.simulation.shower_dataset import ShowerDataset
from detopt.surrogate.shower import ShowerDiffusion
from detopt.surrogate.shower.study import aligned_conditions

#: Share of the shower above which a voxel counts as hit (dimensionless).
HIT_SHARE: float = 1e-3


def cell_observables(maps: np.ndarray) -> dict[str, np.ndarray]:
    """Hottest-voxel share and number of voxels above ``HIT_SHARE`` of the shower, per map."""
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    shares = flat / np.maximum(flat.sum(axis=1, keepdims=True), 1e-300)
    return {"hottest_voxel_share": shares.max(axis=1), "voxels_above_0.1%": (shares > HIT_SHARE).sum(axis=1).astype(float)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", help="test set (Parquet)")
    parser.add_argument("models", nargs="+", help="model folders")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    test = ShowerDataset.from_parquet(args.test)
    _, ids = test.condition_ids()
    simulated = cell_observables(test.maps)
    for folder in args.models:
        model = ShowerDiffusion.load(folder)
        conditions = aligned_conditions(model, test.condition_names, test.conditions)
        chunks = []
        with torch.no_grad():
            for k, start in enumerate(range(0, len(conditions), 2000)):
                rows = torch.as_tensor(conditions[start : start + 2000])
                chunks.append(model.sample(rows, n_steps=args.steps, method="dpm",
                                           generator=torch.Generator().manual_seed(args.seed + k)).double().numpy())
        generated = cell_observables(np.concatenate(chunks))
        for name, sim in simulated.items():
            gen = generated[name]
            mean_err = np.array([gen[ids == c].mean() / sim[ids == c].mean() - 1.0 for c in np.unique(ids)])
            width_err = np.array([gen[ids == c].std() / sim[ids == c].std() - 1.0 for c in np.unique(ids)])
            print(f"{folder:32s} {name:20s} mean: median {100 * np.median(mean_err):+.1f}%, rms {100 * np.sqrt(np.mean(mean_err**2)):.1f}%;"
                  f" width: median {100 * np.median(width_err):+.1f}%, rms {100 * np.sqrt(np.mean(width_err**2)):.1f}%")


if __name__ == "__main__":
    main()
