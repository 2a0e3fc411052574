"""The U-Net shower denoiser: shapes at the paper's 32 x 32 and at sizes that need padding, save/load
giving identical samples, LoRA on its layers, and a short training on 32 x 32 maps that learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detopt.errors import ConfigError
from detopt.simulation import VoxelGrid
from detopt.simulation.shower_dataset import ShowerDataset, generate_shower_dataset
from detopt.surrogate import TrainConfig
from detopt.surrogate.shower import ShowerDiffusion, ShowerUNet
from detopt.surrogate.shower.adaptation import LoraSettings, adapt, lora_targets

#: The smallest U-Net the tests train: 8 channels at full resolution, one block per level.
TINY_UNET = {"channels": 8, "n_blocks": 1, "levels": 3, "embedding_width": 16}


@pytest.fixture(scope="module")
def maps_32() -> ShowerDataset:
    """6 conditions x 30 showers of geometry A on the paper's 32 x 32 grid (10-100 GeV)."""
    return generate_shower_dataset("A", n_conditions=6, showers_per_condition=30, energy_range=(10.0, 100.0),
                                   grid=VoxelGrid(n_depth=32, n_radial=32), seed=4)


def _tiny_model(data: ShowerDataset) -> ShowerDiffusion:
    # The linear normalization: the network's likelihood fit of "mlp" costs seconds that test nothing here.
    return ShowerDiffusion.build("unet", data.n_depth, data.n_radial, data.condition_names, TINY_UNET,
                                 n_train_steps=50, residual="mean_scale")


@pytest.mark.parametrize(("n_depth", "n_radial", "levels"), [(32, 32, 3), (30, 20, 3), (12, 8, 3), (5, 3, 4)])
def test_output_has_the_code_shape_at_any_grid(n_depth: int, n_radial: int, levels: int) -> None:
    net = ShowerUNet(n_depth, n_radial, cond_dim=5, channels=8, levels=levels, n_train_steps=20)
    stride = 2 ** (levels - 1)
    assert all(p % stride == 0 and p >= s for p, s in zip(net.padded_shape, (n_depth, n_radial)))
    gen = torch.Generator().manual_seed(0)
    x, cond = torch.randn(3, 1 + n_depth * n_radial, generator=gen), torch.randn(3, 5, generator=gen)
    # Zero-initialized output layers predict 0; with random ones every entry responds to the input.
    net.out_conv.weight.data.normal_(generator=gen)
    net.out_total.weight.data.normal_(generator=gen)
    out = net(x, torch.tensor([0, 7, 19]), cond)
    assert out.shape == (3, 1 + n_depth * n_radial)
    assert bool(torch.isfinite(out).all()) and float(out.detach().std()) > 0.0
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_settings_name_the_field_and_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"denoiser.levels.*\[2, 3, 4\]"):
        ShowerUNet(32, 32, 4, levels=5)
    with pytest.raises(ConfigError, match="denoiser.channels.*multiple of 8"):
        ShowerUNet(32, 32, 4, channels=12)


def test_save_load_round_trip_gives_identical_samples(maps_32: ShowerDataset, tmp_path: Path) -> None:
    model = _tiny_model(maps_32)
    model.fit(maps_32.conditions, maps_32.maps, TrainConfig(epochs=1, batch_size=64, device="cpu", seed=2))
    model.save(tmp_path / "unet")
    twin = ShowerDiffusion.load(tmp_path / "unet")
    assert twin.to_config() == model.to_config() and twin.to_config()["denoiser"]["type"] == "unet"
    assert twin.to_config()["denoiser"]["config"]["levels"] == 3
    cond = maps_32.conditions[:7]
    first = model.sample(cond, n_steps=4, generator=torch.Generator().manual_seed(9))
    second = twin.sample(cond, n_steps=4, generator=torch.Generator().manual_seed(9))
    assert first.shape == (7, 32, 32) and float(first.sum()) > 0.0
    assert torch.equal(first, second)


def test_lora_attaches_to_every_convolution_and_linear_layer(maps_32: ShowerDataset) -> None:
    base = _tiny_model(maps_32)
    base.fit(maps_32.conditions, maps_32.maps, TrainConfig(epochs=1, batch_size=64, device="cpu", seed=2))
    targets, saved = lora_targets(base.denoiser)
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in base.denoiser.modules())
    assert n_conv >= 10 and "down_blocks.1.0.conv1" in targets and "upsample.0" in targets
    assert "out_norm" in saved and "mid_block.norm1" in saved
    checksum = base.checksum()
    adapted = adapt(base, maps_32.conditions[:60], maps_32.maps[:60], "lora",
                    TrainConfig(epochs=1, batch_size=32, device="cpu", seed=5, lr=5e-3), LoraSettings(rank=4, alpha=8))
    assert base.checksum() == checksum  # the base model is untouched
    trainable = adapted.trainable_parameters
    assert 0 < trainable < base.n_parameters
    maps = adapted.sample(maps_32.conditions[:4], n_steps=3, generator=torch.Generator().manual_seed(1))
    assert maps.shape == (4, 32, 32) and bool(torch.isfinite(maps).all())


def test_a_short_training_on_32x32_maps_lowers_the_loss(maps_32: ShowerDataset) -> None:
    model = _tiny_model(maps_32)
    result = model.fit(maps_32.conditions, maps_32.maps,
                       TrainConfig(epochs=15, batch_size=32, lr=3e-3, patience=None, device="cpu", seed=1))
    # An untrained denoiser predicts v = 0, a validation loss of ~1 (unit-variance targets); measured
    # 0.911 after the first epoch and 0.806 after the 15th (144 training showers, one thread).
    assert result.val_loss[0] < 1.0
    assert result.best_loss < 0.9 * result.val_loss[0], result.val_loss
    assert result.best_loss < 0.88, result.val_loss
