"""Benchmark of the diffusion surrogate on the AIDO-sized problem (one CPU core; CUDA if present).

Problem size (AIDO sec. 6): design encoding 18 (6 thicknesses + 6 two-way material one-hots),
context 2 (photon / pion one-hot), true target 1 -> cond_dim 21; reconstructed target 1. The
denoiser is AIDO Table 1 (21 + 1 + 1 -> 200 -> 100 -> 1, ELU), the model ``ConditionalDiffusion.mlp``
defaults (cosine 100-step schedule, v-prediction, "mlp" residual normalization).

Metrics (best of ``--repeats`` runs, each timed with ``time.perf_counter``):
- ``train_samples_per_s``: diffusion training throughput (Adam steps, batch 256, the fit's loop);
- ``{ddpm_full,ddim5,ddim10,ddim20,dpmpp2m10}_samples_per_s``: sampling without autograd;
- ``ddim10_1e5_s``: DDIM-10 sampling of 10^5 per-event targets (target: < 1 s on one core);
- ``grad_1e4_s``: one value and gradient of L' w.r.t. the design for 10^4 events, DDIM-10.
``cuda_`` keys repeat them on the GPU when ``torch.cuda.is_available()``.

Usage: ``python bench/surrogate.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from detopt.atomic import write_text_atomic
from detopt.surrogate import PerEventLossSurrogate, TrainConfig

from _timing import best_time  # bench/_timing.py (the script's folder is on sys.path)

DESIGN_DIM = 18
CONTEXT_DIM = 2
DDIM10_TARGET_S = 1.0  # DDIM-10 sampling of 10^5 targets in under 1 s on one core


def synthetic_events(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """AIDO-shaped events: 6 thicknesses + 6 one-hot pairs, photon/pion, T ~ U[1, 20] GeV, T_reco ~ T."""
    g = torch.Generator().manual_seed(seed)
    thickness = torch.rand(n, 6, generator=g) * 10.0
    material = (torch.rand(n, 6, generator=g) < 0.5).float()
    design = torch.cat([thickness, torch.stack([material, 1 - material], dim=2).reshape(n, 12)], dim=1)
    pion = (torch.rand(n, 1, generator=g) < 0.5).float()
    context = torch.cat([1 - pion, pion], dim=1)
    t_true = 1.0 + 19.0 * torch.rand(n, 1, generator=g)
    width = (0.05 + 0.01 * thickness.mean(dim=1, keepdim=True)) * (1.0 + pion) * t_true.sqrt()
    t_reco = t_true + width * torch.randn(n, 1, generator=g)
    return design, context, t_true, t_reco


def run(device: torch.device, quick: bool, repeats: int) -> dict[str, float]:
    prefix = "" if device.type == "cpu" else f"{device.type}_"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results: dict[str, float] = {}

    # --- training throughput
    n_train = 20_000 if quick else 100_000
    events = synthetic_events(n_train)
    surrogate = PerEventLossSurrogate.build(DESIGN_DIM, CONTEXT_DIM)
    config = TrainConfig(epochs=2 if quick else 5, val_fraction=0.1, patience=None, device=device.type, seed=0)
    fit_start = time.perf_counter()
    result = surrogate.fit(*events, config)
    sync()
    results[f"{prefix}fit_total_s"] = time.perf_counter() - fit_start
    results[f"{prefix}train_samples_per_s"] = result.samples_seen / result.seconds
    model = surrogate.model

    # --- sampling throughput (no autograd), physical-units output included
    n = 100_000
    design, context, t_true, _ = synthetic_events(n, seed=1)
    cond = torch.cat([design, context, t_true], dim=1).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def sampler(method: str, steps: int | None, rows: int) -> Callable[[], object]:
        def go() -> object:
            with torch.no_grad():
                return model.sample(cond[:rows], method, steps, generator=gen)  # type: ignore[arg-type]

        return go

    n_ddpm = 10_000 if quick else n
    results[f"{prefix}ddpm_full_samples_per_s"] = n_ddpm / best_time(sampler("ddpm", None, n_ddpm), repeats, sync)
    for steps in (5, 10, 20):
        seconds = best_time(sampler("ddim", steps, n), repeats, sync)
        results[f"{prefix}ddim{steps}_samples_per_s"] = n / seconds
        if steps == 10:
            results[f"{prefix}ddim10_1e5_s"] = seconds
    results[f"{prefix}dpmpp2m10_samples_per_s"] = n / best_time(sampler("dpm++2m", 10, n), repeats, sync)

    # --- one gradient of L' w.r.t. the design, 10^4 events, DDIM-10
    m = 10_000
    ctx, tt = context[:m].to(device), t_true[:m].to(device)
    noise = torch.randn(m, 1, generator=torch.Generator().manual_seed(2)).to(device)
    theta = design[0].clone().to(device).requires_grad_(True)

    def gradient() -> object:
        theta.grad = None
        loss = surrogate(theta, ctx, tt, noise=noise, n_steps=10, method="ddim")
        loss.backward()
        return theta.grad

    results[f"{prefix}grad_1e4_s"] = best_time(gradient, repeats, sync)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller training and DDPM sizes (< 1 min)")
    parser.add_argument("--json", type=Path, help="write the metrics as flat JSON to this path")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions (best is kept)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # the single-core numbers the issue asks for
    started = time.perf_counter()
    try:
        results = run(torch.device("cpu"), args.quick, repeats)
        if torch.cuda.is_available():
            results.update(run(torch.device("cuda"), args.quick, repeats))
    finally:
        torch.set_num_threads(threads_before)
    results["bench_wall_s"] = time.perf_counter() - started

    print(f"detopt surrogate benchmark ({'quick' if args.quick else 'full'}; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}; 1 CPU thread)")
    print(f"{'metric':<34}{'value':>14}")
    for key, value in results.items():
        print(f"{key:<34}{value:>14.4g}")
    ddim10 = results["ddim10_1e5_s"]
    verdict = "met" if ddim10 < DDIM10_TARGET_S else f"missed by {ddim10 / DDIM10_TARGET_S - 1:.0%}"
    print(f"target DDIM-10, 1e5 targets < {DDIM10_TARGET_S} s on one core: {ddim10:.3f} s ({verdict})")
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
