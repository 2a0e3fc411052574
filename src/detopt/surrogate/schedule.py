"""Noise schedules of the diffusion process: a small config object, no weights.

The schedule turns a few named settings (kind, number of training steps, beta range)
into the cumulative products ``alphas_cumprod`` once; the denoiser never sees them
(the split of Hugging Face diffusers). It saves as a JSON-able dict and is shared by
the training objective and both samplers.

Index convention (as in diffusers): training step ``t`` runs over ``0 .. n_train_steps - 1``;
``alphas_cumprod[t] = prod_{s <= t} (1 - betas[s])`` is the signal fraction after ``t + 1``
noising steps, so ``x_t = sqrt(alphas_cumprod[t]) x_0 + sqrt(1 - alphas_cumprod[t]) eps``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch

from detopt.errors import ConfigError

ScheduleKind = Literal["linear", "cosine"]
Prediction = Literal["epsilon", "v"]
Spacing = Literal["trailing", "quadratic"]

#: Number of training steps at which the linear beta range of Ho et al. (2020), 1e-4 .. 0.02,
#: is defined; with fewer steps the betas are scaled by 1000 / n_train_steps (Nichol & Dhariwal
#: 2021, "improved DDPM" code) so that the chain still ends in (nearly) pure noise.
LINEAR_REFERENCE_STEPS: int = 1000

#: Offset ``s`` of the cosine schedule (Nichol & Dhariwal 2021, eq. 17): keeps beta_0 from
#: being vanishingly small.
COSINE_OFFSET: float = 0.008

#: Largest beta allowed (Nichol & Dhariwal 2021): avoids a singular last step.
MAX_BETA: float = 0.999

PREDICTIONS: tuple[str, ...] = ("epsilon", "v")


def check_prediction(prediction: str, field: str = "prediction") -> None:
    """Raise ``ConfigError`` unless ``prediction`` is ``"epsilon"`` or ``"v"``."""
    if prediction not in PREDICTIONS:
        raise ConfigError(field, f"must be one of {PREDICTIONS}, got {prediction!r}")


def linear_betas(n_train_steps: int, beta_start: float, beta_end: float, scale_to_steps: bool) -> torch.Tensor:
    """Linear schedule of Ho et al. (2020), sec. 4: betas evenly spaced from beta_start to beta_end."""
    scale = LINEAR_REFERENCE_STEPS / n_train_steps if scale_to_steps else 1.0
    betas = torch.linspace(beta_start * scale, beta_end * scale, n_train_steps, dtype=torch.float64)
    return betas.clamp(max=MAX_BETA)


def cosine_alphas_cumprod(n_train_steps: int, offset: float = COSINE_OFFSET) -> torch.Tensor:
    """Cosine schedule, Nichol & Dhariwal (2021) eq. 17: alpha_bar(t) = f(t)/f(0), f = cos^2(...).

    Returned at the ``n_train_steps`` training steps ``t = 1 .. T`` (index 0 .. T-1), with
    the betas clipped at ``MAX_BETA`` as in the paper.
    """
    steps = torch.arange(n_train_steps + 1, dtype=torch.float64) / n_train_steps
    f = torch.cos((steps + offset) / (1.0 + offset) * math.pi / 2.0) ** 2
    betas = (1.0 - f[1:] / f[:-1]).clamp(min=0.0, max=MAX_BETA)
    return torch.cumprod(1.0 - betas, dim=0)


class NoiseSchedule:
    """Variance schedule of a DDPM (Ho et al. 2020), with the coefficients the samplers need.

    ``kind="linear"`` is the schedule of Ho et al. and of the AIDO surrogate (betas 1e-4 .. 0.02
    at 1000 steps, scaled to ``n_train_steps`` unless ``scale_to_steps=False``);
    ``kind="cosine"`` is that of Nichol & Dhariwal (2021). Tensors are float64 on the CPU;
    samplers take Python floats from them, so one schedule serves any dtype and device.
    """

    def __init__(
        self,
        kind: ScheduleKind = "linear",
        n_train_steps: int = 100,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        scale_to_steps: bool = True,
    ) -> None:
        if kind not in ("linear", "cosine"):
            raise ConfigError("schedule.kind", f"must be 'linear' or 'cosine', got {kind!r}")
        if isinstance(n_train_steps, bool) or not isinstance(n_train_steps, int) or n_train_steps < 2:
            raise ConfigError("schedule.n_train_steps", f"must be an integer >= 2, got {n_train_steps!r}")
        if not (0.0 < float(beta_start) <= float(beta_end) < 1.0):
            raise ConfigError(
                "schedule.beta_start",
                f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}",
            )
        self.kind: ScheduleKind = kind
        self.n_train_steps = int(n_train_steps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.scale_to_steps = bool(scale_to_steps)

        if kind == "linear":
            betas = linear_betas(self.n_train_steps, self.beta_start, self.beta_end, self.scale_to_steps)
            alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        else:
            alphas_cumprod = cosine_alphas_cumprod(self.n_train_steps)
            previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
            betas = 1.0 - alphas_cumprod / previous
        self.betas: torch.Tensor = betas
        self.alphas: torch.Tensor = 1.0 - betas
        self.alphas_cumprod: torch.Tensor = alphas_cumprod
        #: alpha_bar of the step before each step (1 before the first): DDPM posterior.
        self.alphas_cumprod_prev: torch.Tensor = torch.cat(
            [torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]]
        )
        #: Variance of q(x_{t-1} | x_t, x_0), Ho et al. eq. 7 (beta tilde).
        self.posterior_variance: torch.Tensor = (
            betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        )

    # ------------------------------------------------------------------ config
    def to_config(self) -> dict[str, Any]:
        """JSON-able dict that ``from_config`` turns back into an identical schedule."""
        return {
            "kind": self.kind,
            "n_train_steps": self.n_train_steps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "scale_to_steps": self.scale_to_steps,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "NoiseSchedule":
        """Build from a ``to_config`` dict; unknown keys or kinds raise ``ConfigError``."""
        if not isinstance(config, Mapping):
            raise ConfigError("schedule", f"must be a mapping, got {type(config).__name__}")
        allowed = {"kind", "n_train_steps", "beta_start", "beta_end", "scale_to_steps"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigError("schedule", f"unknown keys {unknown}; allowed {sorted(allowed)}")
        return cls(**dict(config))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items())
        return f"NoiseSchedule({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoiseSchedule) and self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_config().items())))

    # ------------------------------------------------------------------ helpers
    def _check_t(self, t: torch.Tensor | int, n: int | None = None) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ConfigError("t", f"timesteps must be integers, got dtype {t.dtype}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.n_train_steps):
            raise ConfigError(
                "t", f"timesteps must lie in [0, {self.n_train_steps - 1}], got [{int(t.min())}, {int(t.max())}]"
            )
        if n is not None and t.ndim == 1 and t.shape[0] != n:
            raise ConfigError("t", f"expected {n} timesteps (one per sample), got {t.shape[0]}")
        return t

    def _coefficient(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values[t]`` shaped to broadcast against ``like`` (``n x *event_shape``)."""
        out = values.to(like.device)[t.to(like.device)].to(like.dtype)
        if out.ndim == 1:
            out = out.reshape(out.shape[0], *([1] * (like.ndim - 1)))
        return out

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Forward process q(x_t | x_0), Ho et al. eq. 4: sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps.

        ``x0`` and ``noise`` are ``n x *event_shape``; ``t`` is an integer or a length-``n``
        integer tensor of training steps.
        """
        if x0.shape != noise.shape:
            raise ConfigError("noise", f"shape {tuple(noise.shape)} differs from x0 shape {tuple(x0.shape)}")
        t = self._check_t(t, x0.shape[0] if x0.ndim else None)
        sqrt_ab = self._coefficient(self.alphas_cumprod.sqrt(), t, x0)
        sqrt_1mab = self._coefficient((1.0 - self.alphas_cumprod).sqrt(), t, x0)
        return sqrt_ab * x0 + sqrt_1mab * noise

    def velocity(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Target of v-prediction, Salimans & Ho (2022) sec. 4: v = sqrt(ab) eps - sqrt(1 - ab) x_0."""
        t = self._check_t(t, x0.shape[0] if x0.ndim else None)
        sqrt_ab = self._coefficient(self.alphas_cumprod.sqrt(), t, x0)
        sqrt_1mab = self._coefficient((1.0 - self.alphas_cumprod).sqrt(), t, x0)
        return sqrt_ab * noise - sqrt_1mab * x0

    def split_prediction(
        self, model_output: torch.Tensor, x_t: torch.Tensor, t: int, prediction: Prediction = "epsilon"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a denoiser output at step ``t`` (one step for all samples) into (x0_hat, eps_hat).

        epsilon: x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab) (Ho et al. eq. 15);
        v: x0 = sqrt(ab) x_t - sqrt(1 - ab) v, eps = sqrt(1 - ab) x_t + sqrt(ab) v.
        """
        ab = float(self.alphas_cumprod[t])
        sqrt_ab, sqrt_1mab = math.sqrt(ab), math.sqrt(1.0 - ab)
        if prediction == "epsilon":
            eps = model_output
            x0 = (x_t - sqrt_1mab * eps) / sqrt_ab
        elif prediction == "v":
            x0 = sqrt_ab * x_t - sqrt_1mab * model_output
            eps = sqrt_1mab * x_t + sqrt_ab * model_output
        else:
            check_prediction(prediction)
            raise AssertionError("unreachable")
        return x0, eps

    def ddim_timesteps(self, n_steps: int, spacing: Spacing = "trailing") -> list[int]:
        """Training steps visited by an ``n_steps`` sampler, descending from ``T - 1``.

        ``"trailing"`` (Lin et al. 2024, table 2): evenly spaced, the first step always the
        last training step ``T - 1`` (pure noise), so few-step samplers start from the right
        distribution; ``n_steps = n_train_steps`` gives the full chain ``T-1, ..., 0``.
        ``"quadratic"`` (Song et al. 2021, appendix D.2): t_i ~ (i / n)^2, denser at low noise,
        where narrow peaks of the target are formed; it also starts at ``T - 1`` and ends at 0.
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= self.n_train_steps:
            raise ConfigError(
                "n_steps", f"must be an integer in [1, {self.n_train_steps}] (n_train_steps), got {n_steps!r}"
            )
        last = self.n_train_steps - 1
        if spacing == "trailing":
            edges = torch.linspace(self.n_train_steps, 0, n_steps + 1, dtype=torch.float64)
            return [int(round(float(v))) - 1 for v in edges[:-1]]
        if spacing == "quadratic":
            if n_steps == 1:
                return [last]
            raw = torch.linspace(1.0, 0.0, n_steps, dtype=torch.float64) ** 2 * last
            steps: list[int] = []
            for i, v in enumerate(raw.tolist()):
                # Round, then keep the sequence strictly decreasing with room for the rest.
                value = min(int(round(v)), (steps[-1] - 1) if steps else last)
                steps.append(max(value, n_steps - 1 - i))
            return steps
        raise ConfigError("spacing", f"must be 'trailing' or 'quadratic', got {spacing!r}")
