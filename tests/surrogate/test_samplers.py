"""DDPM, DDIM and DPM-Solver++ samplers, checked with exact denoisers (no training involved).

With the exact E[eps | x_t] of a known distribution any deviation is the sampler's own. These
tests pin what the samplers can do: the full chains are accurate, the deterministic sampler
is a differentiable function of the conditioning, and 10 DDIM steps are measurably too
narrow (a property of DDIM, not of a network), which DPM-Solver++(2M) repairs at equal cost.
"""

from __future__ import annotations

import math

import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.surrogate import MLPDenoiser, NoiseSchedule, ddim_sample, ddpm_sample, dpm_solver_sample

from .synthetic import M1, M2, S1, S2, ExactMixtureDenoiser, mixture_case, normal_cdf

N = 100_000


def _gaussian(schedule: NoiseSchedule, std: float) -> ExactMixtureDenoiser:
    return ExactMixtureDenoiser(schedule, [1.0], [0.0], [std])


def _cond(n: int = N) -> torch.Tensor:
    return torch.zeros(n, 1, dtype=torch.float64)


def _noise(seed: int, n: int = N) -> torch.Tensor:
    return torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_full_chains_reproduce_a_unit_gaussian(kind: str) -> None:
    s = NoiseSchedule(kind, 100)
    den = _gaussian(s, 1.0)
    ddpm = ddpm_sample(den, s, _cond(), generator=torch.Generator().manual_seed(0))
    ddim = ddim_sample(den, s, _cond(), 100, noise=_noise(1))
    assert float(ddpm.std()) == pytest.approx(1.0, abs=0.01)
    assert float(ddim.std()) == pytest.approx(1.0, abs=0.02)
    assert abs(float(ddpm.mean())) < 0.01 and abs(float(ddim.mean())) < 0.01


def test_ddim_eta1_full_chain_is_ddpm() -> None:
    """DDIM with eta = 1 over all steps is ancestral sampling with variance beta tilde (Song et al. sec. 4.1)."""
    s = NoiseSchedule("linear", 100)
    den = ExactMixtureDenoiser(s, [0.3, 0.7], [-1.0, 1.0], [0.3, 0.5])
    z = _noise(2, 20_000)
    a = ddim_sample(den, s, _cond(20_000), 100, eta=1.0, noise=z, generator=torch.Generator().manual_seed(3))
    b = ddpm_sample(den, s, _cond(20_000), noise=z, generator=torch.Generator().manual_seed(3), variance="small")
    assert torch.allclose(a, b, atol=1e-9)
    # ... and in distribution both equal the default ('large' variance) DDPM and the truth, loosely.
    c = ddpm_sample(den, s, _cond(20_000), generator=torch.Generator().manual_seed(4))
    grid = torch.linspace(-2.0, 2.5, 46, dtype=torch.float64)
    truth = 0.3 * normal_cdf((grid + 1.0) / 0.3) + 0.7 * normal_cdf((grid - 1.0) / 0.5)
    for x in (a, c):
        empirical = (x.flatten()[:, None] <= grid).double().mean(dim=0)
        assert float((empirical - truth).abs().max()) < 0.02  # Kolmogorov distance


def test_ddim_eta0_is_deterministic_given_noise() -> None:
    s = NoiseSchedule("cosine", 100)
    den = _gaussian(s, 0.7)
    z = _noise(5, 1000)
    a = ddim_sample(den, s, _cond(1000), 10, noise=z)
    b = ddim_sample(den, s, _cond(1000), 10, noise=z, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a, b)


@pytest.mark.parametrize("std", [0.5, 1.0])
def test_ten_ddim_steps_are_too_narrow_and_dpm_solver_is_not(std: float) -> None:
    """Pinned numbers: with an exact denoiser DDIM-10 loses 12-15% of the width, DPM-Solver++(2M)-10 < 5%."""
    s = NoiseSchedule("cosine", 100)
    den = _gaussian(s, std)
    z = _noise(6)
    ddim10 = float(ddim_sample(den, s, _cond(), 10, noise=z).std()) / std - 1
    dpm10 = float(dpm_solver_sample(den, s, _cond(), 10, noise=z).std()) / std - 1
    ddim50 = float(ddim_sample(den, s, _cond(), 50, noise=z).std()) / std - 1
    assert -0.17 < ddim10 < -0.09
    assert abs(dpm10) < 0.05
    assert abs(ddim50) < 0.035


def test_mixture_fidelity_of_the_fast_samplers() -> None:
    """Separation power of y for the theta = 1 mixture (w = 0.5) with the exact score.

    DDPM's full chain is exact to the histogram noise (S ~ 5e-4); 10 DDIM steps cannot
    resolve the narrow N(1, 0.3^2) peak (S ~ 0.02: no training can fix that); DPM-Solver++(2M)
    with quadratic spacing reaches S < 0.005 with the same 10 network evaluations.
    """
    case = mixture_case()
    mean, std = case.mean(1.0), case.std(1.0)
    w = 0.5
    s = NoiseSchedule("cosine", 100)
    den = ExactMixtureDenoiser(s, [w, 1 - w], [(M1 - mean) / std, (M2 - mean) / std], [S1 / std, S2 / std])
    z = _noise(7)

    def sep(x: torch.Tensor) -> float:
        return case.separation(1.0, x * std + mean)

    s_ddpm = sep(ddpm_sample(den, s, _cond(), noise=z, generator=torch.Generator().manual_seed(8)))
    s_ddim10 = sep(ddim_sample(den, s, _cond(), 10, noise=z))
    s_ddim50 = sep(ddim_sample(den, s, _cond(), 50, noise=z))
    s_dpm10 = sep(dpm_solver_sample(den, s, _cond(), 10, noise=z, spacing="quadratic"))
    assert s_ddpm < 0.001
    assert 0.01 < s_ddim10 < 0.04
    assert s_ddim50 < 0.003
    assert s_dpm10 < 0.005


def test_gradient_flows_through_every_ddim_step_to_cond() -> None:
    torch.manual_seed(0)  # only for nn.Linear's construction; weights are redrawn below
    net = MLPDenoiser(2, 3, hidden=(16, 16), time_embedding="sinusoidal", n_train_steps=20).double()
    net.reset_parameters(torch.Generator().manual_seed(1))
    s = NoiseSchedule("linear", 20)
    cond = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = ddim_sample(net, s, cond, 7, noise=z)
    (grad,) = torch.autograd.grad(x.sum(), cond)
    assert torch.isfinite(grad).all() and grad.abs().min() > 0
    # exact: autograd through 7 steps equals finite differences
    assert torch.autograd.gradcheck(lambda c: ddim_sample(net, s, c, 7, noise=z), (cond,))
    assert torch.autograd.gradcheck(lambda c: dpm_solver_sample(net, s, c, 7, noise=z), (cond,))


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samplers_run_in_both_dtypes_and_keep_shapes(prediction: str, dtype: torch.dtype) -> None:
    net = MLPDenoiser((2, 3), 4, hidden=(8,), n_train_steps=30).to(dtype)
    s = NoiseSchedule("linear", 30)
    cond = torch.randn(6, 4, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    for x in (
        ddpm_sample(net, s, cond, generator=g, prediction=prediction),  # type: ignore[arg-type]
        ddim_sample(net, s, cond, 5, eta=0.5, generator=g, prediction=prediction),  # type: ignore[arg-type]
        dpm_solver_sample(net, s, cond, 5, generator=g, prediction=prediction),  # type: ignore[arg-type]
    ):
        assert x.shape == (6, 2, 3) and x.dtype == dtype and torch.isfinite(x).all()


def test_bad_input_is_named() -> None:
    s = NoiseSchedule("linear", 20)
    net = MLPDenoiser(1, 2, hidden=(4,), n_train_steps=20)
    cond = torch.zeros(3, 2)
    with pytest.raises(ConfigError, match="generator"):
        ddim_sample(net, s, cond, 5)  # neither noise nor generator
    with pytest.raises(ConfigError, match="generator"):
        ddim_sample(net, s, cond, 5, eta=0.5, noise=torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="generator"):
        ddpm_sample(net, s, cond, noise=torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="eta"):
        ddim_sample(net, s, cond, 5, eta=1.5, noise=torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="n_steps"):
        ddim_sample(net, s, cond, 21, noise=torch.zeros(3, 1))
    with pytest.raises(DataError, match="noise"):
        ddim_sample(net, s, cond, 5, noise=torch.zeros(4, 1))
    with pytest.raises(DataError, match="noise"):
        ddim_sample(net, s, cond, 5, noise=torch.zeros(3, 2))
    with pytest.raises(DataError, match="cond"):
        ddim_sample(net, s, torch.zeros(3), 5, noise=torch.zeros(3, 1))
    with pytest.raises(DataError, match="NaN"):
        ddim_sample(net, s, torch.full((3, 2), float("nan")), 5, noise=torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="prediction"):
        ddim_sample(net, s, cond, 5, noise=torch.zeros(3, 1), prediction="x0")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="variance"):
        ddpm_sample(net, s, cond, generator=torch.Generator(), variance="medium")  # type: ignore[arg-type]


class _UnitGaussianV(torch.nn.Module):
    """The exact v-prediction for unit-variance Gaussian data: E[v | x_t] = 0 at every step."""

    event_shape = (1,)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


@pytest.mark.parametrize("n_steps", [10, 20, 50])
def test_deterministic_ddim_shrinks_unit_width_by_the_cosine_step_factor(n_steps: int) -> None:
    """With an exact denoiser, DDIM's width for unit-variance data is exp(-pi^2 / (8 N)) (cosine
    schedule), why shower widths need ~50 steps; DPM-Solver++ 2M keeps it within 0.5% from 20 steps."""
    schedule = NoiseSchedule("cosine", 100)
    noise = torch.randn(20_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cond = torch.zeros(20_000, 0, dtype=torch.float64)
    ddim = ddim_sample(_UnitGaussianV(), schedule, cond, n_steps, noise=noise, prediction="v")
    dpm = dpm_solver_sample(_UnitGaussianV(), schedule, cond, n_steps, noise=noise, prediction="v")
    ratio = float(ddim.std() / noise.std())
    assert ratio == pytest.approx(math.exp(-math.pi**2 / (8 * n_steps)), abs=0.003)
    if n_steps >= 20:
        assert float(dpm.std() / noise.std()) == pytest.approx(1.0, abs=0.005)
