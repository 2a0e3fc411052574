"""How well the shower model's conditional normalization generalizes to conditions it never saw.

Fits the likelihood normalization (``--residual mlp``) of the shower code on a training set, as
``detopt shower train`` does, and prints how far the per-condition width of the normalized
residual is from 1 on a test set of held-out conditions (rms of its log), for the total energy
and for the voxels. 0 would mean the diffusion model only has to generate unit-width residuals.

    python docs/scripts/normalization_generalization.py DIR/data/A.parquet DIR/data/A_test2k.parquet --floor 5e-4
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from detopt.simulation.shower_dataset import ShowerDataset
from detopt.surrogate.shower.model import ShowerDiffusion, residual_fit_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", help="training set (Parquet from detopt shower dataset)")
    parser.add_argument("test", help="test set of held-out conditions")
    parser.add_argument("--floor", type=float, default=5e-4, help="voxel-fraction floor of the code")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps of the fit (default: as detopt shower train)")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of every training condition's showers to fit on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, test = ShowerDataset.from_parquet(args.train), ShowerDataset.from_parquet(args.test)
    if args.fraction < 1.0:
        train = train.subsample(args.fraction, args.seed)
    # the denoiser is never trained here: the smallest one will do
    model = ShowerDiffusion.build("mlp", train.n_depth, train.n_radial, train.condition_names,
                                  {"width": 8, "n_blocks": 1}, fraction_floor=args.floor)
    steps = args.steps if args.steps is not None else residual_fit_steps(len(train))
    model.fit_normalization(train.conditions, train.maps, args.seed, steps)
    _, z = model.normalize(torch.as_tensor(test.conditions), model.representation.encode(test.maps))
    _, ids = test.condition_ids()
    widths = np.array([z.numpy()[ids == k].std(0) for k in np.unique(ids)])
    energy, voxels = np.log(widths[:, 0]), np.log(widths[:, 1:][widths[:, 1:] > 0])
    print(f"{len(train):,} training showers, {len(np.unique(train.condition_ids()[1]))} conditions, {steps} Adam steps")
    print(f"per-condition width of the normalized residual on {widths.shape[0]} test conditions:")
    print(f"  total energy: rms of log {np.sqrt(np.mean(energy**2)):.3f} (range {widths[:, 0].min():.2f} .. {widths[:, 0].max():.2f})")
    print(f"  voxels:       rms of log {np.sqrt(np.mean(voxels**2)):.3f} (median width {np.exp(np.median(voxels)):.2f})")


if __name__ == "__main__":
    main()
