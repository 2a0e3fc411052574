"""Principal-component coordinates of the voxel residuals (``--components``): exact on their span, unit width, saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.surrogate import TrainConfig
from detopt.surrogate.shower import ShowerDiffusion
from detopt.surrogate.shower.latent import PrincipalComponents

from .shower_fixtures import GRID, small_dataset


def _low_rank(n: int, n_voxels: int, rank: int, seed: int = 0) -> torch.Tensor:
    """[energy, voxels] rows whose voxel part lies in a ``rank``-dimensional subspace (global modes only)."""
    g = torch.Generator().manual_seed(seed)
    modes = torch.randn(rank, n_voxels, generator=g, dtype=torch.float64)
    weights = torch.randn(n, rank, generator=g, dtype=torch.float64) * torch.linspace(3.0, 1.0, rank, dtype=torch.float64)
    energy = torch.randn(n, 1, generator=g, dtype=torch.float64)
    return torch.cat([energy, 0.5 + weights @ modes], dim=1)


def test_rows_on_the_span_of_the_kept_components_round_trip_exactly() -> None:
    x = _low_rank(500, 24, rank=4)
    pca = PrincipalComponents(24, 4).to(torch.float64).fit(x)
    latent = pca(x)
    assert latent.shape == (500, 5)
    assert torch.allclose(pca.inverse(latent), x, atol=1e-9)
    assert torch.equal(latent[:, 0], x[:, 0])  # the energy entry passes unchanged
    assert pca.explained_variance == pytest.approx(1.0, abs=1e-9)


def test_the_scores_are_uncorrelated_with_unit_width() -> None:
    x = _low_rank(2000, 24, rank=6, seed=1) + 0.05 * torch.randn(2000, 25, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    pca = PrincipalComponents(24, 6).to(torch.float64).fit(x)
    scores = pca(x)[:, 1:]
    covariance = torch.cov(scores.T)
    assert torch.allclose(covariance, torch.eye(6, dtype=torch.float64), atol=1e-6)
    assert 0.98 < pca.explained_variance < 1.0


def test_the_leading_component_is_the_strongest_correlated_mode() -> None:
    """A shower-wide mode (all voxels moving together) on top of independent voxel noise is found first."""
    g = torch.Generator().manual_seed(3)
    mode = torch.linspace(1.0, 2.0, 30, dtype=torch.float64)
    amplitude = 2.0 * torch.randn(4000, 1, generator=g, dtype=torch.float64)
    voxels = amplitude * mode + torch.randn(4000, 30, generator=g, dtype=torch.float64)
    pca = PrincipalComponents(30, 3).to(torch.float64).fit(torch.cat([torch.zeros(4000, 1, dtype=torch.float64), voxels], 1))
    cosine = float(pca.basis[:, 0] @ mode / mode.norm())
    assert cosine > 0.99
    # independent unit noise in 30 voxels: the other kept components carry ~1/30 of the variance each
    total = float((2.0 * mode).square().sum() + 30.0)
    assert pca.explained_variance == pytest.approx((float((2.0 * mode).square().sum()) + 1.0 + 2 * 1.0) / total, abs=0.03)


def test_bad_settings_and_inputs_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="components.*\\[1, 24\\]"):
        PrincipalComponents(24, 25)
    with pytest.raises(DataError, match="principal components"):
        PrincipalComponents(24, 4).fit(torch.zeros(10, 24))
    with pytest.raises(ConfigError, match="components"):
        ShowerDiffusion.build("mlp", GRID.n_depth, GRID.n_radial, ("energy_gev",), {"components": GRID.n_depth * GRID.n_radial + 1})


def test_a_model_on_components_trains_samples_and_reloads(tmp_path: Path) -> None:
    data = small_dataset()
    model = ShowerDiffusion.build(
        "mlp", GRID.n_depth, GRID.n_radial, data.condition_names, {"width": 32, "n_blocks": 1, "components": 6}, n_train_steps=50,
    )
    assert model.latent_dim == 7
    model.fit(data.conditions, data.maps, TrainConfig(epochs=3, batch_size=64, device="cpu", seed=3))
    assert 0.0 < model.latent.explained_variance < 1.0
    noise = torch.randn(5, model.latent_dim, generator=torch.Generator().manual_seed(0))
    maps = model.sample(data.conditions[:5], n_steps=4, noise=noise)
    assert maps.shape == (5, GRID.n_depth, GRID.n_radial) and bool((maps >= 0).all())
    sim_total = data.maps[:5].sum(axis=(1, 2)).mean()
    assert abs(float(maps.sum(dim=(1, 2)).mean()) / sim_total - 1.0) < 0.15
    folder = model.save(tmp_path / "pca")
    loaded = ShowerDiffusion.load(folder)
    assert loaded.latent is not None and loaded.latent.n_components == 6
    assert torch.equal(loaded.sample(data.conditions[:5], n_steps=4, noise=noise), maps)
    with pytest.raises(DataError, match="noise"):
        model.sample(data.conditions[:5], n_steps=4, noise=torch.zeros(5, model.representation.code_dim))


def test_a_model_on_components_adapts_with_lora_and_keeps_its_components() -> None:
    """LoRA trains on the base's coordinates: the adapted model keeps the base's components and samples maps."""
    from detopt.surrogate.shower.adaptation import LoraSettings, adapt

    data = small_dataset()
    base = ShowerDiffusion.build(
        "mlp", GRID.n_depth, GRID.n_radial, data.condition_names, {"width": 32, "n_blocks": 1, "components": 6}, n_train_steps=50,
    )
    base.fit(data.conditions, data.maps, TrainConfig(epochs=2, batch_size=64, device="cpu", seed=3))
    new = small_dataset("B", seed=5, n_conditions=4, showers=20)
    adapted = adapt(base, new.conditions, new.maps, "lora", TrainConfig(epochs=2, batch_size=32, device="cpu", seed=1), LoraSettings(4, 8.0))
    assert torch.equal(adapted.model.latent.basis, base.latent.basis)
    maps = adapted.sample(new.conditions[:4], n_steps=3, generator=torch.Generator().manual_seed(0))
    assert maps.shape == (4, GRID.n_depth, GRID.n_radial) and bool(torch.isfinite(maps).all())
    # the sampling calorimeter records a few % of the beam: the refitted normalization carries that scale
    ratio = float(maps.sum(dim=(1, 2)).mean()) / float(new.maps[:4].sum(axis=(1, 2)).mean())
    assert 0.7 < ratio < 1.4


def test_the_width_outside_the_components_is_recorded_per_voxel() -> None:
    exact = PrincipalComponents(24, 4).to(torch.float64).fit(_low_rank(800, 24, rank=4))
    assert float(exact.tail_std.max()) < 1e-9  # nothing outside the span of 4 modes
    noise = 0.3 * torch.randn(800, 25, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    noisy = PrincipalComponents(24, 4).to(torch.float64).fit(_low_rank(800, 24, rank=4) + noise)
    # isotropic voxel noise of 0.3: the part outside 4 of 24 directions keeps ~20/24 of its variance
    assert float(noisy.tail_std.mean()) == pytest.approx(0.3 * (20 / 24) ** 0.5, rel=0.08)


def test_cell_fluctuations_keep_every_voxel_mean_and_leave_empty_voxels_empty() -> None:
    from detopt.surrogate.shower.latent import cell_fluctuations

    fractions = torch.tensor([[0.5, 0.2, 0.05, 0.001, 0.0]], dtype=torch.float64).expand(200_000, 5)
    code_std = torch.full((200_000, 5), 0.4, dtype=torch.float64)
    out = cell_fluctuations(fractions, code_std, 1e-2, torch.Generator().manual_seed(0))
    assert torch.allclose(out.mean(dim=0)[:4], fractions[0, :4], rtol=0.01)
    assert float(out[:, 4].abs().max()) == 0.0
    # first order: the fraction's spread is (fraction + floor) x the code's, as in the code log(f + floor)
    expected = (fractions[0, :3] + 1e-2) * 0.4
    assert torch.allclose(out.std(dim=0)[:3], expected, rtol=0.03)
    assert bool((out >= 0).all())


def test_sampling_puts_cell_fluctuations_back_unless_the_noise_is_given() -> None:
    data = small_dataset()
    model = ShowerDiffusion.build(
        "mlp", GRID.n_depth, GRID.n_radial, data.condition_names, {"width": 32, "n_blocks": 1, "components": 3}, n_train_steps=50,
    )
    model.fit(data.conditions, data.maps, TrainConfig(epochs=2, batch_size=64, device="cpu", seed=3))
    rows = data.conditions[:200]
    smooth = model.sample(rows, n_steps=3, generator=torch.Generator().manual_seed(1), cell_noise=False)
    rough = model.sample(rows, n_steps=3, generator=torch.Generator().manual_seed(1))
    again = model.sample(rows, n_steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(rough, again)  # reproducible from the seed
    # same totals, same mean map, more voxel-to-voxel spread
    assert torch.allclose(rough.sum(dim=(1, 2)), smooth.sum(dim=(1, 2)), rtol=1e-5)
    share = lambda m: m / m.sum(dim=(1, 2), keepdim=True)  # noqa: E731
    assert float((share(rough) - share(smooth)).abs().max()) > 1e-4
    noise = torch.randn(5, model.latent_dim, generator=torch.Generator().manual_seed(2))
    fixed = model.sample(rows[:5], n_steps=3, noise=noise)
    assert torch.equal(fixed, model.sample(rows[:5], n_steps=3, noise=noise, generator=torch.Generator().manual_seed(9)))
