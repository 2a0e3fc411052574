"""Conditional normalization of the target: the diffusion model generates a residual of unit width.

Diffusion samplers are accurate when the distribution they generate has about unit width:
with a perfect denoiser, 10 DDIM steps shrink the standard deviation of a N(0, s^2) target by
about 12-17% for s = 1 but by 25-45% for s = 0.25-0.5 (``tests/surrogate/test_samplers.py``),
and the AIDO targets are exactly such narrow conditionals (T_reco given T_true spreads by the
resolution, not by the 1-20 GeV range of T). Worse, a denoiser trained with the DDPM loss
barely learns how that narrow width depends on the design: on a synthetic calorimeter with
plain standardization L' and dL'/d(design) came out 30-100% wrong.

This module removes what a regression on the conditioning explains: z = (x - m(c)) / s(c),
with m and log s linear in the standardized conditioning (``"mean_scale"``), plus a small
network's correction fitted by Gaussian likelihood (``"mlp"``). The diffusion model then only
generates the shape of a unit-width residual, and the width's dependence on the design, which
dominates the eq.-10 loss, comes from a direct likelihood fit. Both maps are smooth, so
d x / d c is differentiable through them.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from detopt.errors import ConfigError, DataError

ResidualMode = Literal["none", "mean", "mean_scale", "mlp", "shash"]
RESIDUAL_MODES: tuple[str, ...] = ("none", "mean", "mean_scale", "mlp", "shash")
#: Modes with a network fitted by likelihood on top of the linear maps.
NETWORK_MODES: tuple[str, ...] = ("mlp", "shash")

#: Bounds of the sinh-arcsinh shape of ``"shash"``: skewness parameter |epsilon| <= this, and the
#: tail weight delta within [1 / SHASH_TAIL_RANGE, SHASH_TAIL_RANGE]; enough for the skewness of
#: -3 of leaking photon showers, bounded so that the inverse cannot blow up.
SHASH_SKEW_MAX: float = 2.0
SHASH_TAIL_RANGE: float = 2.0

#: Hidden widths, epochs, batch size and Adam learning rate of the ``"mlp"`` baseline: a small
#: heteroscedastic regression, fitted by Gaussian likelihood; enough for smooth mean and width
#: functions of ~20 conditioning inputs, small next to the diffusion training.
BASELINE_HIDDEN: tuple[int, ...] = (64, 64)
BASELINE_EPOCHS: int = 20
BASELINE_BATCH: int = 1024
BASELINE_LR: float = 3e-3

#: Ridge penalty of the least-squares fits, per row, on standardized conditioning; only keeps
#: collinear columns (one-hot groups) solvable, far too small to bias the fit.
RIDGE_PER_ROW: float = 1e-6
#: The fitted log-scale is clamped to its training range widened by this much on both sides,
#: so that an extrapolated design cannot blow the scale up or down exponentially.
LOG_SCALE_MARGIN: float = math.log(2.0)


def _ridge_solve(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Least squares ``targets ~ [features, 1] @ beta`` with a tiny ridge (not on the intercept)."""
    n, d = features.shape
    design = torch.cat([features, torch.ones(n, 1, dtype=features.dtype, device=features.device)], dim=1)
    gram = design.T @ design
    penalty = torch.full((d + 1,), RIDGE_PER_ROW * n, dtype=features.dtype, device=features.device)
    penalty[-1] = 0.0
    return torch.linalg.solve(gram + torch.diag(penalty), design.T @ targets)  # (d+1) x k


class ConditionalAffine(nn.Module):
    """z = (x - (c W_m + b_m)) / exp(clamp(c W_s + b_s)), per target feature; ``mode`` picks what is fitted.

    ``"none"``: identity. ``"mean"``: linear mean only. ``"mean_scale"``: linear mean and a
    log-linear scale. ``"mlp"``: both plus a small network's correction fitted by Gaussian
    likelihood (the scale of real resolutions is rarely log-linear in the design). ``"shash"``:
    as ``"mlp"``, then a sinh-arcsinh transform z = sinh(delta asinh(y) - epsilon) of the
    standardized y of the first ``shaped_features`` entries (all by default), with skewness
    ``epsilon`` and tail weight ``delta`` from the same network (Jones & Pewsey 2009), so that
    skewed conditionals (the low tail of leaking showers) also become unit normal. Works on
    standardized ``c`` (``n x cond_dim``) and flattened, standardized ``x`` (``n x x_dim``);
    the fitted maps are buffers (and the network's parameters), saved in ``state_dict``.
    """

    mean_weight: torch.Tensor
    mean_bias: torch.Tensor
    scale_weight: torch.Tensor
    scale_bias: torch.Tensor
    log_scale_low: torch.Tensor
    log_scale_high: torch.Tensor

    def __init__(
        self, cond_dim: int, x_dim: int, mode: ResidualMode = "mean_scale", shaped_features: int | None = None
    ) -> None:
        super().__init__()
        if mode not in RESIDUAL_MODES:
            raise ConfigError("residual", f"must be one of {RESIDUAL_MODES}, got {mode!r}")
        self.mode: ResidualMode = mode
        self.cond_dim = cond_dim
        self.x_dim = x_dim
        shaped = x_dim if shaped_features is None else shaped_features
        if not 0 <= shaped <= x_dim:
            raise ConfigError("shaped_features", f"must be in [0, {x_dim}], got {shaped}")
        self.shaped = shaped if mode == "shash" else 0
        self.register_buffer("mean_weight", torch.zeros(cond_dim, x_dim))
        self.register_buffer("mean_bias", torch.zeros(x_dim))
        self.register_buffer("scale_weight", torch.zeros(cond_dim, x_dim))
        self.register_buffer("scale_bias", torch.zeros(x_dim))
        self.register_buffer("log_scale_low", torch.zeros(x_dim))
        self.register_buffer("log_scale_high", torch.zeros(x_dim))
        self.net: nn.Sequential | None = None
        if mode in NETWORK_MODES:
            widths = (cond_dim, *BASELINE_HIDDEN)
            layers: list[nn.Module] = []
            for a, b in zip(widths[:-1], widths[1:]):
                layers += [nn.Linear(a, b), nn.SiLU()]
            layers.append(nn.Linear(widths[-1], 2 * x_dim + 2 * self.shaped))
            self.net = nn.Sequential(*layers)

    def fit(self, c: torch.Tensor, x: torch.Tensor, seed: int = 0, steps: int | None = None) -> "ConditionalAffine":
        """Fit the linear mean (and log-scale) by ridge least squares in float64.

        ``"mlp"`` then adds a small network's correction to both, fitted by Gaussian likelihood
        (Adam, batches and initial weights drawn from ``seed``): ``steps`` Adam steps, or
        ``BASELINE_EPOCHS`` epochs when ``None``.
        """
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ConfigError("residual_steps", f"must be a whole number >= 1, got {steps!r}")
        with torch.no_grad():
            self._fit_linear(c, x)
        if self.mode in NETWORK_MODES:
            self._fit_network(c, x, seed, steps)
        return self

    @torch.no_grad()
    def _fit_linear(self, c: torch.Tensor, x: torch.Tensor) -> "ConditionalAffine":
        if c.ndim != 2 or c.shape[1] != self.cond_dim or x.ndim != 2 or x.shape != (c.shape[0], self.x_dim):
            raise DataError(
                f"residual fit: expected c n x {self.cond_dim} and x n x {self.x_dim}, "
                f"got {tuple(c.shape)} and {tuple(x.shape)}"
            )
        for buffer in (self.mean_weight, self.mean_bias, self.scale_weight, self.scale_bias):
            buffer.zero_()
        self.log_scale_low.zero_()
        self.log_scale_high.zero_()
        if self.mode == "none":
            return self
        c64, x64 = c.to(torch.float64), x.to(torch.float64)
        beta = _ridge_solve(c64, x64)
        self.mean_weight.copy_(beta[:-1])
        self.mean_bias.copy_(beta[-1])
        if self.mode == "mean":
            return self
        residual = x64 - (c64 @ beta[:-1] + beta[-1])
        power = residual.square()
        # a feature the mean explains exactly (e.g. a voxel empty in every shower of a small set) keeps scale 1:
        # its log-scale would be log(0)
        constant = power.mean(dim=0) <= 1e-24
        floor = 1e-8 * power.mean(dim=0).clamp(min=1e-30)
        gamma = _ridge_solve(c64, torch.log(power + floor))
        gamma[:, constant] = 0.0
        log_scale = 0.5 * (c64 @ gamma[:-1] + gamma[-1])
        # Global correction: the standardized residual gets unit mean square.
        ratio = (power / torch.exp(2.0 * log_scale)).mean(dim=0)
        correction = torch.where(constant, torch.zeros_like(ratio), 0.5 * torch.log(ratio.clamp(min=1e-300)))
        log_scale = log_scale + correction
        self.scale_weight.copy_(0.5 * gamma[:-1])
        self.scale_bias.copy_(0.5 * gamma[-1] + correction)
        self.log_scale_low.copy_(log_scale.min(dim=0).values - LOG_SCALE_MARGIN)
        self.log_scale_high.copy_(log_scale.max(dim=0).values + LOG_SCALE_MARGIN)
        return self

    def _fit_network(self, c: torch.Tensor, x: torch.Tensor, seed: int, steps: int | None) -> None:
        """Gaussian negative log-likelihood fit of the correction network, from a zero correction."""
        assert self.net is not None
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
            last = self.net[-1]
            assert isinstance(last, nn.Linear)
            last.weight.zero_()
            last.bias.zero_()
        c, x = c.detach(), x.detach()
        n = c.shape[0]
        params = list(self.net.parameters())
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=BASELINE_LR)
        steps_per_epoch = max(1, math.ceil(n / BASELINE_BATCH))
        epochs = BASELINE_EPOCHS if steps is None else math.ceil(steps / steps_per_epoch)
        total = epochs * steps_per_epoch
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        )
        with torch.enable_grad():
            for _ in range(epochs):
                order = torch.randperm(n, generator=generator).to(c.device)
                for start in range(0, n, BASELINE_BATCH):
                    idx = order[start : start + BASELINE_BATCH]
                    mean, log_scale, shape = self._maps(c[idx], clamp=False)
                    z, log_jacobian = self._shaped((x[idx] - mean) * torch.exp(-log_scale), shape)
                    nll = (log_scale + 0.5 * z**2).mean()
                    if log_jacobian is not None:
                        nll = nll - log_jacobian.mean() / self.x_dim
                    optimizer.zero_grad(set_to_none=True)
                    nll.backward()
                    optimizer.step()
                    schedule.step()
        optimizer.zero_grad(set_to_none=True)
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad():
            _, log_scale, _ = self._maps(c, clamp=False)
            self.log_scale_low.copy_(log_scale.min(dim=0).values - LOG_SCALE_MARGIN)
            self.log_scale_high.copy_(log_scale.max(dim=0).values + LOG_SCALE_MARGIN)

    def _maps(
        self, c: torch.Tensor, clamp: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Mean, log-scale and (``"shash"``) the skewness epsilon and tail weight delta, from one network call.

        The shape is bounded smoothly: |epsilon| <= ``SHASH_SKEW_MAX``, delta within a factor
        ``SHASH_TAIL_RANGE`` of 1 (0 and 1 at a zero network output).
        """
        dtype = c.dtype
        mean = c @ self.mean_weight.to(dtype) + self.mean_bias.to(dtype)
        if self.mode == "mean" or self.mode == "none":
            return mean, torch.zeros_like(mean), None
        log_scale = c @ self.scale_weight.to(dtype) + self.scale_bias.to(dtype)
        shape = None
        if self.net is not None:
            out = self.net(c)
            mean = mean + out[:, : self.x_dim]
            log_scale = log_scale + out[:, self.x_dim : 2 * self.x_dim]
            if self.shaped:
                raw = out[:, 2 * self.x_dim :]
                skew = SHASH_SKEW_MAX * torch.tanh(raw[:, : self.shaped] / SHASH_SKEW_MAX)
                tail = torch.exp(math.log(SHASH_TAIL_RANGE) * torch.tanh(raw[:, self.shaped :]))
                shape = (skew, tail)
        if clamp:
            log_scale = torch.minimum(torch.maximum(log_scale, self.log_scale_low.to(dtype)), self.log_scale_high.to(dtype))
        return mean, log_scale, shape

    def _shaped(
        self, y: torch.Tensor, shape: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sinh-arcsinh transform of the leading ``shaped`` entries of ``y`` and its log-Jacobian per row."""
        if shape is None:
            return y, None
        z, log_jacobian = sinh_arcsinh(y[:, : self.shaped], *shape)
        return torch.cat([z, y[:, self.shaped :]], dim=1), log_jacobian.sum(dim=1)

    def scale(self, c: torch.Tensor) -> torch.Tensor:
        """The fitted width s(c) of every feature (``n x x_dim``): one unit of the residual in standardized units."""
        return torch.exp(self._maps(c)[1])

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Standardized target ``x`` (``n x x_dim``) -> residual ``z``."""
        if self.mode == "none":
            return x
        mean, log_scale, shape = self._maps(c)
        return self._shaped((x - mean) * torch.exp(-log_scale), shape)[0]

    def inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Residual ``z`` -> standardized target, differentiable in ``z`` and ``c``."""
        if self.mode == "none":
            return z
        mean, log_scale, shape = self._maps(c)
        if shape is not None:
            skew, tail = shape
            y = torch.sinh((torch.asinh(z[:, : self.shaped]) + skew) / tail)
            z = torch.cat([y, z[:, self.shaped :]], dim=1)
        return mean + z * torch.exp(log_scale)


def sinh_arcsinh(y: torch.Tensor, skew: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sinh-arcsinh transformation (Jones & Pewsey 2009): z = sinh(delta asinh(y) - epsilon), and log |dz/dy|."""
    inner = tail * torch.asinh(y) - skew
    z = torch.sinh(inner)
    log_cosh = inner.abs() + torch.log1p(torch.exp(-2.0 * inner.abs())) - math.log(2.0)
    log_jacobian = torch.log(tail) + log_cosh - 0.5 * torch.log1p(y * y)
    return z, log_jacobian
