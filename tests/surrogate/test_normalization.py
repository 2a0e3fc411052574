"""Conditional normalization of the target (the residual the diffusion model generates)."""

from __future__ import annotations

import pytest
import torch

from detopt.errors import ConfigError
from detopt.surrogate import ConditionalAffine


def _data(n: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x = 1 + 2 c0 - c1 + sigma(c) eps with sigma = 0.3 + 0.2 c0 (not log-linear), c ~ U[-1, 1]^2."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=g) * 2 - 1
    sigma = 0.3 + 0.2 * c[:, :1]
    x = 1 + 2 * c[:, :1] - c[:, 1:] + sigma * torch.randn(n, 1, generator=g)
    return c, x, sigma


def test_linear_mean_is_recovered() -> None:
    c, x, _ = _data()
    norm = ConditionalAffine(2, 1, "mean").fit(c, x)
    assert norm.mean_weight[:, 0].tolist() == pytest.approx([2.0, -1.0], abs=0.02)
    assert float(norm.mean_bias[0]) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(("mode", "tolerance"), [("mean_scale", 0.12), ("mlp", 0.04), ("shash", 0.04)])
def test_residual_has_unit_width_everywhere(mode: str, tolerance: float) -> None:
    c, x, sigma = _data()
    norm = ConditionalAffine(2, 1, mode).fit(c, x, seed=0)  # type: ignore[arg-type]
    z = norm(x, c)
    assert float(z.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(z.std()) == pytest.approx(1.0, abs=0.02)
    for lo, hi in ((-1.0, -0.6), (-0.2, 0.2), (0.6, 1.0)):  # slices in c0, where sigma = 0.1 .. 0.5
        in_slice = (c[:, 0] >= lo) & (c[:, 0] < hi)
        assert float(z[in_slice].std()) == pytest.approx(1.0, abs=tolerance), (mode, lo)


@pytest.mark.parametrize("mode", ["none", "mean", "mean_scale", "mlp", "shash"])
def test_inverse_round_trip_and_gradient(mode: str) -> None:
    c, x, _ = _data(2000)
    norm = ConditionalAffine(2, 1, mode).fit(c, x).double()  # type: ignore[arg-type]
    c, x = c.double(), x.double()
    assert torch.allclose(norm.inverse(norm(x, c), c), x, atol=1e-10)
    cc = c[:5].clone().requires_grad_(True)
    z = torch.randn(5, 1, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: norm.inverse(z, a), (cc,))


def test_scale_is_clamped_outside_the_training_range() -> None:
    c, x, _ = _data()
    norm = ConditionalAffine(2, 1, "mean_scale").fit(c, x)
    far = torch.tensor([[50.0, 0.0]])
    _, log_scale, _ = norm._maps(far)
    assert float(log_scale) <= float(norm.log_scale_high) + 1e-6


def test_unknown_mode() -> None:
    with pytest.raises(ConfigError, match="residual"):
        ConditionalAffine(2, 1, "quadratic")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["mean_scale", "mlp", "shash"])
def test_a_feature_constant_over_the_data_keeps_a_finite_unit_scale(mode: str) -> None:
    """A voxel empty in every shower of a small 32x32 set: before, its log-scale was log(0) and training gave NaN."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(20, 3, generator=g)
    x = torch.randn(20, 4, generator=g)
    x[:, 2] = 0.0  # constant (standardized: exactly zero)
    affine = ConditionalAffine(3, 4, mode).fit(c, x)
    z = affine(x, c)
    assert torch.isfinite(z).all()
    assert torch.allclose(z[:, 2], torch.zeros(20), atol=1e-3)
    assert torch.allclose(affine.inverse(z, c), x, atol=1e-4)
    assert float(z[:, [0, 1, 3]].square().mean()) == pytest.approx(1.0, rel=0.35)  # the others still standardized


def _narrow_and_wide(seed: int = 0, per: int = 100, n_conditions: int = 60) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A target whose width changes 20-fold, non-log-linearly, across the conditions (like the log
    total energy of contained and leaking showers), ``per`` draws per condition."""
    g = torch.Generator().manual_seed(seed)
    c_values = torch.rand(n_conditions, 2, generator=g) * 4.0 - 2.0
    log_width = torch.log(torch.tensor(0.005)) + 3.0 * torch.sigmoid(3.0 * c_values[:, 0])
    mean = 0.5 * c_values[:, 0] + 0.2 * c_values[:, 1]
    ids = torch.arange(n_conditions).repeat_interleave(per)
    x = mean[ids] + torch.exp(log_width[ids]) * torch.randn(ids.numel(), generator=g)
    return c_values[ids], x.unsqueeze(1), ids


def _width_scatter(norm: ConditionalAffine, c: torch.Tensor, x: torch.Tensor, ids: torch.Tensor) -> float:
    """RMS over conditions of log(std of the residual of each condition): 0 when every width is 1."""
    with torch.no_grad():
        z = norm(x, c)[:, 0]
    stds = torch.stack([z[ids == k].std() for k in torch.unique(ids)])
    return float(torch.sqrt(torch.mean(torch.log(stds) ** 2)))


def test_a_longer_likelihood_fit_gives_unit_width_in_every_condition() -> None:
    """Held-out conditions: the per-condition width of the residual is 1 within ~10% after enough Adam
    steps, where a log-linear scale leaves it wrong by a factor of several."""
    c, x, ids = _narrow_and_wide(seed=1)
    c_test, x_test, ids_test = _narrow_and_wide(seed=2, per=400, n_conditions=20)
    linear = ConditionalAffine(2, 1, "mean_scale").fit(c, x)
    short = ConditionalAffine(2, 1, "mlp").fit(c, x, seed=0)
    fitted = ConditionalAffine(2, 1, "mlp").fit(c, x, seed=0, steps=2000)
    assert _width_scatter(linear, c_test, x_test, ids_test) > 0.25
    assert _width_scatter(short, c_test, x_test, ids_test) > 0.25
    assert _width_scatter(fitted, c_test, x_test, ids_test) < 0.12


def test_residual_steps_must_be_a_positive_whole_number() -> None:
    c, x, _ = _narrow_and_wide(per=5, n_conditions=4)
    with pytest.raises(ConfigError, match="residual_steps"):
        ConditionalAffine(2, 1, "mlp").fit(c, x, steps=0)


def test_sinh_arcsinh_mode_makes_a_skewed_conditional_symmetric() -> None:
    """A low tail like that of leaking showers (skewness ~ -2, depending on the condition): the
    ``shash`` residual is symmetric and of unit width per condition, and inverts exactly."""
    g = torch.Generator().manual_seed(3)
    n_conditions, per = 40, 200
    c_values = torch.rand(n_conditions, 1, generator=g) * 2.0 - 1.0
    ids = torch.arange(n_conditions).repeat_interleave(per)
    tail = -torch.log(torch.rand(n_conditions * per, generator=g))
    x = (0.3 * c_values[ids, 0] - (0.2 + 0.3 * (c_values[ids, 0] + 1.0)) * tail).unsqueeze(1)
    c = c_values[ids]

    def skewness(v: torch.Tensor) -> float:
        d = v - v.mean()
        return float((d**3).mean() / (d**2).mean() ** 1.5)

    gaussian = ConditionalAffine(1, 1, "mlp").fit(c, x, seed=0, steps=2000)
    shash = ConditionalAffine(1, 1, "shash").fit(c, x, seed=0, steps=2000)
    with torch.no_grad():
        z_gauss, z = gaussian(x, c)[:, 0], shash(x, c)[:, 0]
        back = shash.inverse(shash(x, c), c)
    skew_gauss = [skewness(z_gauss[ids == k]) for k in range(n_conditions)]
    skew_shash = [skewness(z[ids == k]) for k in range(n_conditions)]
    widths = torch.stack([z[ids == k].std() for k in range(n_conditions)])
    assert sorted(skew_gauss)[n_conditions // 2] < -1.3
    assert abs(sorted(skew_shash)[n_conditions // 2]) < 0.3
    assert float(widths.min()) > 0.8 and float(widths.max()) < 1.2
    assert torch.allclose(back, x, atol=1e-4)


def test_only_the_leading_features_get_the_sinh_arcsinh_shape() -> None:
    """The shower model shapes only the log total energy; the other entries stay Gaussian (``"mlp"``)."""
    g = torch.Generator().manual_seed(4)
    c = torch.rand(2000, 1, generator=g)
    x = torch.stack([-torch.log(torch.rand(2000, generator=g)), torch.randn(2000, generator=g)], dim=1)
    norm = ConditionalAffine(1, 2, "shash", shaped_features=1).fit(c, x, seed=0, steps=300)
    assert norm.shaped == 1 and norm.net is not None and norm.net[-1].out_features == 2 * 2 + 2
    with torch.no_grad():
        assert torch.allclose(norm.inverse(norm(x, c), c), x, atol=1e-4)
    with pytest.raises(ConfigError, match="shaped_features"):
        ConditionalAffine(1, 2, "shash", shaped_features=3)
