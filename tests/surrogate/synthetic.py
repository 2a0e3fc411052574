"""Closed-form conditional distributions and exact denoisers for the surrogate tests.

Nothing here uses the simulator: every distribution has an analytic mean, width, CDF and
derivative, so a trained surrogate can be checked against the truth, not against noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from detopt.surrogate import NoiseSchedule


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def separation_power(h1: torch.Tensor, h2: torch.Tensor) -> float:
    """CaloChallenge separation power S = 1/2 sum_i (h1_i - h2_i)^2 / (h1_i + h2_i), normalized histograms."""
    h1 = h1 / h1.sum()
    h2 = h2 / h2.sum()
    total = h1 + h2
    mask = total > 0
    return float(0.5 * ((h1 - h2) ** 2)[mask].div(total[mask]).sum())


@dataclass(frozen=True)
class Conditional:
    """y | theta with analytic mean, std, d mean / d theta and CDF; theta uniform on [0, 2]."""

    name: str
    mean: Callable[[float], float]
    std: Callable[[float], float]
    dmean: Callable[[float], float]
    cdf: Callable[[float, torch.Tensor], torch.Tensor]
    draw: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    support: Callable[[float], tuple[float, float]]

    def data(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` pairs (theta ~ U[0, 2], y ~ p(y | theta)), both ``n x 1``."""
        g = torch.Generator().manual_seed(seed)
        theta = 2.0 * torch.rand(n, 1, generator=g, dtype=torch.float64)
        return theta.float(), self.draw(theta, g).float()

    def separation(self, theta: float, samples: torch.Tensor, bins: int = 40) -> float:
        """S between the histogram of ``samples`` and the exact bin probabilities (with under/overflow)."""
        lo, hi = self.support(theta)
        edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
        cdf = self.cdf(theta, edges)
        exact = torch.cat([cdf[:1], cdf[1:] - cdf[:-1], 1.0 - cdf[-1:]])
        counts = torch.bincount(torch.bucketize(samples.double().flatten(), edges), minlength=bins + 2).double()
        return separation_power(counts, exact)


def gaussian_case() -> Conditional:
    """(a) y | theta ~ N(mu, sigma^2), mu = 2 theta + sin(2 theta) / 2 + 1, sigma = 0.3 + 0.2 theta."""

    def mean(th: float) -> float:
        return 2.0 * th + 0.5 * math.sin(2.0 * th) + 1.0

    def std(th: float) -> float:
        return 0.3 + 0.2 * th

    def draw(theta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        mu = 2.0 * theta + 0.5 * torch.sin(2.0 * theta) + 1.0
        return mu + (0.3 + 0.2 * theta) * torch.randn(theta.shape, generator=g, dtype=theta.dtype)

    return Conditional(
        name="gaussian",
        mean=mean,
        std=std,
        dmean=lambda th: 2.0 + math.cos(2.0 * th),
        cdf=lambda th, e: normal_cdf((e - mean(th)) / std(th)),
        draw=draw,
        support=lambda th: (mean(th) - 4.0 * std(th), mean(th) + 4.0 * std(th)),
    )


#: Components of the mixture case: N(1, 0.3^2) and N(3.5, 0.5^2).
M1, S1, M2, S2 = 1.0, 0.3, 3.5, 0.5


def weight(th: float | torch.Tensor) -> float | torch.Tensor:
    """Weight of the first component, 0.2 + 0.3 theta (0.2 .. 0.8 over theta in [0, 2])."""
    return 0.2 + 0.3 * th


def mixture_case() -> Conditional:
    """(b) y | theta ~ w N(1, 0.3^2) + (1 - w) N(3.5, 0.5^2), w = 0.2 + 0.3 theta."""

    def mean(th: float) -> float:
        w = float(weight(th))
        return w * M1 + (1.0 - w) * M2

    def std(th: float) -> float:
        w = float(weight(th))
        return math.sqrt(w * S1**2 + (1.0 - w) * S2**2 + w * (1.0 - w) * (M1 - M2) ** 2)

    def draw(theta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        first = torch.rand(theta.shape, generator=g, dtype=theta.dtype) < weight(theta)
        a = M1 + S1 * torch.randn(theta.shape, generator=g, dtype=theta.dtype)
        b = M2 + S2 * torch.randn(theta.shape, generator=g, dtype=theta.dtype)
        return torch.where(first, a, b)

    def cdf(th: float, e: torch.Tensor) -> torch.Tensor:
        w = float(weight(th))
        return w * normal_cdf((e - M1) / S1) + (1.0 - w) * normal_cdf((e - M2) / S2)

    return Conditional(
        name="mixture",
        mean=mean,
        std=std,
        dmean=lambda th: 0.3 * (M1 - M2),
        cdf=cdf,
        draw=draw,
        support=lambda th: (M1 - 4.0 * S1, M2 + 4.0 * S2),
    )


class ExactMixtureDenoiser:
    """The exact epsilon predictor E[eps | x_t] for data ~ sum_k w_k N(m_k, s_k^2) (1-d, no conditioning).

    x_t = sqrt(ab) x0 + sqrt(1 - ab) eps is then a Gaussian mixture with component variances
    v_k = ab s_k^2 + 1 - ab, and E[eps | x_t] = sqrt(1 - ab) sum_k r_k (x_t - sqrt(ab) m_k) / v_k
    with r_k the posterior component probabilities. Isolates sampler error from network error.
    """

    event_shape = (1,)

    def __init__(self, schedule: NoiseSchedule, weights: list[float], means: list[float], stds: list[float]) -> None:
        self.schedule = schedule
        self.w = torch.tensor(weights, dtype=torch.float64)
        self.m = torch.tensor(means, dtype=torch.float64)
        self.s = torch.tensor(stds, dtype=torch.float64)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ab = self.schedule.alphas_cumprod[t].to(x_t.dtype).unsqueeze(-1)
        v = ab * self.s**2 + 1.0 - ab
        d = x_t - ab.sqrt() * self.m
        r = torch.softmax(torch.log(self.w) - 0.5 * torch.log(v) - 0.5 * d**2 / v, dim=-1)
        return (1.0 - ab).sqrt() * (r * d / v).sum(dim=-1, keepdim=True)
