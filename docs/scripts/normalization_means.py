"""How much of an adapted shower model's error on the means comes from its normalization alone.

Fits the conditional normalization of the shower code on a share of a training set (as ``detopt
shower adapt`` refits it) and on all of it. The test showers are normalized with the fit on all
of the set and mapped back through the fit on the share: what a model with that normalization
would generate if its diffusion reproduced the residuals exactly. The printed numbers are the
relative RMSE over held-out conditions of the means of the total energy, the radius and the
dispersion of those showers (0 for the fit on all of the set, by construction): the part of a
model's error its denoiser cannot remove. With ``--base`` the share is also fitted with the
conditions standardized on the base model's ranges instead of the share's own, and the base's
normalization is put in the same test as it is: what the base model knows of the new geometry's means.

    python docs/scripts/normalization_means.py DIR/data/B1000.parquet DIR/data/B_test2k.parquet --fraction 0.1 --base DIR/models/A1000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from detopt.evaluation import metrics
from detopt.evaluation import observables as obs
from detopt.simulation.shower_dataset import ShowerDataset
from detopt.surrogate.shower.model import ShowerDiffusion, residual_fit_steps

KEY = ("total_energy_gev", "radius_cm", "dispersion_cm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", help="training set of the geometry (Parquet from detopt shower dataset)")
    parser.add_argument("test", help="test set of held-out conditions")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of every condition's showers to fit on")
    parser.add_argument("--base", default=None, help="a model folder: also fit with its standardization of the conditions")
    parser.add_argument("--floor", type=float, default=5e-4, help="voxel-fraction floor of the code")
    parser.add_argument("--min-energy", type=float, default=10.0, help="test beams at or above this energy (GeV)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, test = ShowerDataset.from_parquet(args.train), ShowerDataset.from_parquet(args.test)
    test = test.select(test.column("energy_gev") >= args.min_energy)
    share = train.subsample(args.fraction, args.seed)

    def fitted(data: ShowerDataset, standardization: ShowerDiffusion | None = None) -> ShowerDiffusion:
        # the denoiser is never trained here: the smallest one will do
        model = ShowerDiffusion.build("mlp", data.n_depth, data.n_radial, data.condition_names,
                                      {"width": 8, "n_blocks": 1}, fraction_floor=args.floor)
        if standardization is None:
            model.fit_normalization(data.conditions, data.maps, args.seed)
            return model
        codes = model.representation.encode(data.maps).to(model.dtype)
        model.cond_standardizer.load_state_dict(standardization.cond_standardizer.state_dict())
        cond_z = model.cond_standardizer(model.condition_features(torch.as_tensor(data.conditions)))
        model.residual.fit(cond_z, model.x_standardizer.fit(codes)(codes), args.seed, residual_fit_steps(len(data)))
        return model

    reference = fitted(train)
    conditions = torch.as_tensor(test.conditions)
    _, z = reference.residuals(conditions, reference.representation.encode(test.maps))
    simulated = obs.dataset_observables(test)
    _, ids = test.condition_ids()

    def errors(model: ShowerDiffusion) -> list[float]:
        with torch.no_grad():
            cond_z = model.cond_standardizer(model.condition_features(conditions))
            codes = model.x_standardizer.inverse(model.residual.inverse(z.to(model.dtype), cond_z))
            maps = model.representation.decode(codes).numpy()
        found = metrics.compare_observables(simulated, ids, obs.dataset_observables(test, maps), ids)
        return [100.0 * found[k].rmse_mean for k in KEY]

    rows = [(f"{100 * args.fraction:g}% ({len(share):,} showers), own standardization", errors(fitted(share)))]
    if args.base:
        base = ShowerDiffusion.load(args.base)
        rows.append((f"{100 * args.fraction:g}%, the base's standardization", errors(fitted(share, base))))
        rows.append(("the base's normalization, not refitted", errors(base)))
    print(f"relative RMSE of the means over {np.unique(ids).size} test conditions (%): E / radius / dispersion, RMS")
    for label, values in rows:
        print(f"  {label:55s} {' / '.join(f'{v:.2f}' for v in values)}   {np.sqrt(np.mean(np.square(values))):.2f}")


if __name__ == "__main__":
    main()
