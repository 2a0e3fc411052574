"""The DDPM training objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detopt.errors import ConfigError, DataError
from detopt.surrogate.denoisers import Denoiser
from detopt.surrogate.schedule import NoiseSchedule, Prediction, check_prediction


def diffusion_loss(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    cond: torch.Tensor,
    prediction: Prediction = "epsilon",
    generator: torch.Generator | None = None,
    *,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ho et al. (2020) eq. 14: E_{t, eps} |eps - eps_theta(x_t, t, cond)|^2, a 0-d tensor.

    ``x0``: clean data ``n x *event_shape``; ``cond``: ``n x cond_dim``. The steps ``t``
    (uniform over the training steps) and the noise are drawn from ``generator`` unless given
    (fixed draws give a deterministic validation loss). With ``prediction="v"`` the target is
    v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022) instead of eps.
    """
    check_prediction(prediction)
    if x0.ndim < 2 or cond.ndim != 2 or x0.shape[0] != cond.shape[0]:
        raise DataError(
            f"diffusion_loss: expected x0 n x *event_shape and cond n x cond_dim with the same n, "
            f"got {tuple(x0.shape)} and {tuple(cond.shape)}"
        )
    n = x0.shape[0]
    if (t is None or noise is None) and generator is None:
        raise ConfigError("generator", "pass a torch.Generator (or both t and noise) to draw the noise")
    if t is None:
        t = torch.randint(0, schedule.n_train_steps, (n,), generator=generator, device=x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = schedule.add_noise(x0, noise, t)
    target = noise if prediction == "epsilon" else schedule.velocity(x0, noise, t)
    out = denoiser(x_t, t, cond)
    if out.shape != target.shape:
        raise DataError(f"denoiser output: expected shape {tuple(target.shape)}, got {tuple(out.shape)}")
    return F.mse_loss(out, target)
