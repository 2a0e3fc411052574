"""Shower denoisers: shapes, a zero prediction before training, configuration round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detopt.errors import ConfigError, DataError
from detopt.standardize import Standardizer
from detopt.surrogate.shower import ShowerConvNet, ShowerMLP, ShowerUNet, build_denoiser
from detopt.surrogate.shower.denoiser import restandardize_conditions


@pytest.mark.parametrize("kind", ["mlp", "conv", "unet"])
def test_output_has_the_code_shape_and_starts_at_zero(kind: str) -> None:
    net = build_denoiser(kind, {"n_depth": 5, "n_radial": 3, "cond_dim": 4, "n_train_steps": 20})
    x = torch.randn(7, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x, torch.arange(7) % 20, torch.randn(7, 4, generator=torch.Generator().manual_seed(1)))
    assert out.shape == (7, 1 + 5 * 3)
    # Zero-initialized output layers: an untrained denoiser predicts v = 0 (a stable start).
    assert float(out.abs().max()) == 0.0


@pytest.mark.parametrize("cls", [ShowerMLP, ShowerConvNet, ShowerUNet])
def test_config_round_trip_rebuilds_the_same_architecture(cls: type[nn.Module]) -> None:
    net = cls(6, 4, 12, n_train_steps=50)
    twin = build_denoiser(net.config_name, net.to_config())
    assert type(twin) is cls and twin.to_config() == net.to_config()
    assert [tuple(p.shape) for p in twin.parameters()] == [tuple(p.shape) for p in net.parameters()]
    # Only layers peft can adapt or save: Linear, Conv2d and normalization layers.
    leaves = [m for m in net.modules() if not list(m.children())]
    assert all(isinstance(m, (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.GroupNorm)) for m in leaves)


def test_bad_shapes_and_settings_are_named() -> None:
    net = ShowerMLP(4, 3, 2, width=16, n_blocks=1)
    with pytest.raises(DataError, match="x_t: expected shape"):
        net(torch.zeros(2, 12), torch.zeros(2, dtype=torch.long), torch.zeros(2, 2))
    with pytest.raises(ConfigError, match="denoiser.channels"):
        ShowerConvNet(4, 3, 2, channels=12)
    with pytest.raises(ConfigError, match="denoiser"):
        build_denoiser("transformer", {})


@pytest.mark.parametrize("kind", ["mlp", "conv", "unet"])
def test_restandardized_conditions_give_the_same_prediction_and_keep_the_null_condition(kind: str) -> None:
    """A denoiser moved to another standardization of its 3 conditions computes the same function;
    the all-zero row of classifier-free guidance is untouched."""
    g = torch.Generator().manual_seed(3)
    net = build_denoiser(kind, {"n_depth": 4, "n_radial": 4, "cond_dim": 4, "n_train_steps": 20})
    net.reset_parameters(g)
    for p in net.parameters():  # the output layers start at zero: give them weights
        p.data.add_(0.1 * torch.randn(p.shape, generator=g))
    physical = torch.randn(9, 3, generator=g) * torch.tensor([5.0, 0.1, 30.0]) + torch.tensor([2.0, 7.0, -40.0])
    old, new = Standardizer(3).fit(physical * 3.0 + 1.0), Standardizer(3).fit(physical)
    x, t = torch.randn(9, 17, generator=g), torch.arange(9) % 20
    flag = torch.ones(9, 1)
    null = torch.zeros(9, 4)
    with torch.no_grad():
        before = net(x, t, torch.cat([old(physical), flag], dim=1))
        before_null = net(x, t, null)
        moved = build_denoiser(kind, net.to_config())
        moved.load_state_dict(net.state_dict())
        restandardize_conditions(moved, old, new)
        after = moved(x, t, torch.cat([new(physical), flag], dim=1))
        after_null = moved(x, t, null)
    assert float(before.abs().max()) > 0.01
    assert torch.allclose(after, before, atol=1e-5) and torch.equal(after_null, before_null)
    with pytest.raises(ConfigError, match="cond_dim"):
        restandardize_conditions(moved, Standardizer(2), Standardizer(2))
