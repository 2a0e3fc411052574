"""Training loop: configuration checks, early stopping, EMA, reproducibility, divergence handling."""

from __future__ import annotations

import math

import pytest
import torch

from detopt.errors import ConfigError
from detopt.surrogate import MLPDenoiser, NoiseSchedule, TrainConfig, TrainingDivergedError, train_denoiser


def _data(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cond = torch.rand(n, 1, generator=g) * 2 - 1
    x = 1.5 * cond + 0.3 * torch.randn(n, 1, generator=g)
    return cond, x


def _net(seed: int = 0) -> MLPDenoiser:
    net = MLPDenoiser(1, 1, hidden=(32, 32), time_embedding="sinusoidal", n_train_steps=50)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


SCHEDULE = NoiseSchedule("linear", 50)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"lr": 0.0}, "train.lr"),
        ({"lr": float("nan")}, "train.lr"),
        ({"epochs": 0}, "train.epochs"),
        ({"batch_size": 1.5}, "train.batch_size"),
        ({"val_fraction": 1.0}, "train.val_fraction"),
        ({"patience": 0}, "train.patience"),
        ({"ema_decay": 1.0}, "train.ema_decay"),
        ({"device": "tpu"}, "train.device"),
        ({"lr_schedule": "step"}, "train.lr_schedule"),
        ({"seed": -1}, "train.seed"),
    ],
)
def test_bad_config_names_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig(**kw)
    assert err.value.field == field


def test_paper_defaults_and_round_trip() -> None:
    config = TrainConfig()
    assert config.lr == 1e-3  # AIDO sec. 3.1
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"learning_rate": 1e-3})


def test_training_lowers_the_loss_and_is_reproducible() -> None:
    cond, x = _data()
    config = TrainConfig(epochs=15, batch_size=64, patience=None, device="cpu", seed=3)
    nets = [_net(), _net()]
    results = [train_denoiser(net, SCHEDULE, cond, x, config) for net in nets]
    a, b = results
    assert a.val_loss == b.val_loss
    assert a.val_loss[-1] < 0.8 * a.val_loss[0]
    for pa, pb in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(pa, pb)
    assert a.epochs_run == 15 and 1 <= a.best_epoch <= 15
    assert a.best_loss == min(a.val_loss)
    assert a.samples_seen == 15 * round(0.8 * 512)


def test_early_stopping_keeps_the_best_epoch() -> None:
    cond, x = _data()
    config = TrainConfig(lr=3e-2, epochs=200, batch_size=128, patience=3, device="cpu")
    result = train_denoiser(_net(), SCHEDULE, cond, x, config)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 3 < 200


def test_ema_and_no_validation_split() -> None:
    cond, x = _data()
    config = TrainConfig(epochs=5, batch_size=64, val_fraction=0.0, ema_decay=0.9, patience=2, device="cpu")
    result = train_denoiser(_net(), SCHEDULE, cond, x, config)
    assert result.val_loss == [] and len(result.train_loss) == result.epochs_run
    assert all(math.isfinite(v) for v in result.train_loss)


class _Poisoned(MLPDenoiser):
    """Returns NaN from the 40th call on: a training that diverges mid-way."""

    calls = 0

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        out = super().forward(x_t, t, cond)
        return out * float("nan") if type(self).calls >= 40 else out


def test_nan_loss_stops_with_a_message_and_never_leaves_a_nan_model() -> None:
    net = _Poisoned(1, 1, hidden=(8,), n_train_steps=50)
    cond, x = _data()
    with pytest.raises(TrainingDivergedError, match="loss is nan at epoch"):
        train_denoiser(net, SCHEDULE, cond, x, TrainConfig(epochs=20, batch_size=64, device="cpu"))
    assert all(torch.isfinite(p).all() for p in net.parameters())
