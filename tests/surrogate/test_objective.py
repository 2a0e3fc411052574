"""The DDPM training objective (Ho et al. eq. 14) and its v-prediction variant."""

from __future__ import annotations

import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.surrogate import MLPDenoiser, NoiseSchedule, diffusion_loss


def _zero(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x_t)


def test_zero_denoiser_scores_the_noise_variance() -> None:
    """Predicting 0 costs E[eps^2] = 1 for epsilon and E[v^2] = ab + (1 - ab) E[x0^2] for v."""
    s = NoiseSchedule("cosine", 100)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n, 1), 2.0, dtype=torch.float64)
    cond = torch.zeros(n, 1, dtype=torch.float64)
    assert float(diffusion_loss(_zero, s, x0, cond, "epsilon", g)) == pytest.approx(1.0, abs=0.01)
    t = torch.full((n,), 60)
    ab = float(s.alphas_cumprod[60])
    v_loss = diffusion_loss(_zero, s, x0, cond, "v", g, t=t)
    assert float(v_loss) == pytest.approx(ab + (1 - ab) * 4.0, rel=0.01)


def test_oracle_denoiser_has_zero_loss() -> None:
    s = NoiseSchedule("linear", 50)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(100, 2, generator=g)
    noise = torch.randn(100, 2, generator=g)
    t = torch.randint(0, 50, (100,), generator=g)
    oracle = lambda x_t, tt, c: noise  # noqa: E731
    assert float(diffusion_loss(oracle, s, x0, torch.zeros(100, 1), t=t, noise=noise)) == 0.0


def test_loss_is_reproducible_and_differentiable() -> None:
    s = NoiseSchedule("linear", 50)
    net = MLPDenoiser(1, 2, hidden=(8,), n_train_steps=50)
    x0, cond = torch.randn(32, 1), torch.randn(32, 2)
    a = diffusion_loss(net, s, x0, cond, generator=torch.Generator().manual_seed(3))
    b = diffusion_loss(net, s, x0, cond, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    a.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_bad_input() -> None:
    s = NoiseSchedule("linear", 50)
    with pytest.raises(ConfigError, match="generator"):
        diffusion_loss(_zero, s, torch.zeros(4, 1), torch.zeros(4, 1))
    with pytest.raises(DataError):
        diffusion_loss(_zero, s, torch.zeros(4, 1), torch.zeros(5, 1), generator=torch.Generator())
    with pytest.raises(ConfigError, match="prediction"):
        diffusion_loss(_zero, s, torch.zeros(4, 1), torch.zeros(4, 1), "x0", torch.Generator())  # type: ignore
    with pytest.raises(ConfigError, match="t"):
        diffusion_loss(_zero, s, torch.zeros(4, 1), torch.zeros(4, 1), t=torch.full((4,), 50), noise=torch.zeros(4, 1))
