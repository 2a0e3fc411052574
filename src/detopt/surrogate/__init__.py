"""Conditional diffusion surrogates: noise schedules, denoisers, DDPM/DDIM samplers, training,
the ``ConditionalDiffusion`` model and the per-event loss surrogate of the AIDO optimizer.

The schedule, the denoiser and the samplers are separate (as in Hugging Face diffusers): a
denoiser is any callable ``f(x_t, t, cond)`` and never sees the betas.
"""

from detopt.surrogate.denoisers import Denoiser, MLPDenoiser, bind_denoiser
from detopt.surrogate.loss_surrogate import PerEventLossSurrogate, reconstruction_loss_per_event
from detopt.surrogate.model import ConditionalDiffusion
from detopt.surrogate.objective import diffusion_loss
from detopt.surrogate.normalization import ConditionalAffine
from detopt.surrogate.samplers import ddim_sample, ddim_step, ddpm_sample, ddpm_step, dpm_solver_sample
from detopt.surrogate.schedule import NoiseSchedule
from detopt.surrogate.training import TrainConfig, TrainingDivergedError, TrainResult, train_denoiser

__all__ = [
    "ConditionalAffine",
    "ConditionalDiffusion",
    "Denoiser",
    "MLPDenoiser",
    "NoiseSchedule",
    "PerEventLossSurrogate",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "bind_denoiser",
    "ddim_sample",
    "ddim_step",
    "ddpm_sample",
    "ddpm_step",
    "dpm_solver_sample",
    "diffusion_loss",
    "reconstruction_loss_per_event",
    "train_denoiser",
]
