"""Does a shower model generate residuals as wide as those it was trained on?

On the first conditions of the model's own training set, compares the per-condition width of the
normalized residual (the space the diffusion works in) of generated and simulated showers: for
the total-energy entry and, as a median, for the voxels, per sampler (for a model on principal
components, also for the components it generates). For the first sampler it
also splits the voxels' loss between the generated codes and the decoding (which clips the
generated fractions and divides them by their sum).

    python docs/scripts/shower_residual_widths.py DIR/models/NAME DIR/data/A.parquet --conditions 60
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from detopt.simulation.shower_dataset import ShowerDataset
from detopt.surrogate.shower.model import ShowerDiffusion


def widths(z: torch.Tensor, ids: np.ndarray) -> np.ndarray:
    """Standard deviation of every residual entry per condition: ``n_conditions x code_dim``."""
    values = z.double().numpy()
    return np.array([values[ids == k].std(0) for k in np.unique(ids)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder (DIR/models/NAME)")
    parser.add_argument("data", help="the model's training set (Parquet)")
    parser.add_argument("--conditions", type=int, default=60, help="how many training conditions")
    parser.add_argument("--repeats", type=int, default=5, help="generated showers per simulated one")
    parser.add_argument("--samplers", default="dpm:50,dpm:100,ddim:100,ddim:100:1", help="METHOD:STEPS[:ETA], comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    samplers = [(f.split(":")[0], int(f.split(":")[1]), float(f.split(":")[2]) if f.count(":") == 2 else 0.0)
                for f in args.samplers.split(",")]
    torch.set_num_threads(1)
    model = ShowerDiffusion.load(args.model)
    data = ShowerDataset.from_parquet(args.data)
    _, ids = data.condition_ids()
    keep = ids < args.conditions
    cond = torch.as_tensor(data.conditions[keep], dtype=torch.float64)
    many = cond.repeat(args.repeats, 1)
    ids_sim, ids_gen = ids[keep], np.tile(ids[keep], args.repeats)
    codes_sim = model.representation.encode(torch.as_tensor(data.maps[keep]))
    simulated = widths(model.residuals(cond, codes_sim)[1], ids_sim)

    voxels = simulated > 0  # a voxel empty in every shower of a condition has no width to compare
    voxels[:, 0] = False

    def report(label: str, z: torch.Tensor) -> None:
        generated = widths(z, ids_gen)
        energy = np.median(generated[:, 0] / simulated[:, 0])
        print(f"{label:32s} energy {energy:.3f}   voxels {np.median(generated[voxels] / simulated[voxels]):.3f}")

    print(f"generated / simulated residual width, median over {int(np.unique(ids_sim).size)} training conditions")
    for k, (method, steps, eta) in enumerate(samplers):
        codes = model.sample_codes(many, n_steps=steps, method=method, eta=eta, generator=torch.Generator().manual_seed(args.seed))
        _, z = model.residuals(many, model.representation.encode(model.representation.decode(codes).double()))
        report(f"{method} {steps} steps, eta {eta:g}", z)
        if k == 0:
            report(f"{method} {steps}, codes before decoding", model.residuals(many, codes.double())[1])
            if model.latent is not None:
                maps = model.sample(many, n_steps=steps, method=method, eta=eta, generator=torch.Generator().manual_seed(args.seed))
                report(f"{method} {steps}, with cell fluctuations", model.residuals(many, model.representation.encode(maps.double()))[1])
                sim_c = widths(model.normalize(cond, codes_sim)[1], ids_sim)[:, 1:]
                gen_c = widths(model.normalize(many, codes.double())[1], ids_gen)[:, 1:]
                ratio = np.median(gen_c / sim_c, axis=0)
                print(f"{'':32s} components: median width ratio {np.median(ratio):.3f} (first 8: {np.round(ratio[:8], 3).tolist()})")
            fractions = (torch.exp(codes[:, 1:]) - model.representation.fraction_floor).clamp_min(0.0).sum(dim=1)
            print(f"{'':32s} sum of its fractions before decoding: mean {float(fractions.mean()):.4f}, std {float(fractions.std()):.4f}")


if __name__ == "__main__":
    main()
