"""Training loop of a denoiser: Adam, validation split, early stopping, optional EMA of weights.

Works on already standardized tensors; ``ConditionalDiffusion.fit`` does the standardization.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from detopt.errors import ConfigError, DataError, DetoptError
from detopt.surrogate.objective import diffusion_loss
from detopt.surrogate.schedule import NoiseSchedule, Prediction, check_prediction

Device = Literal["cpu", "cuda", "auto"]
LrSchedule = Literal["constant", "cosine"]


class TrainingDivergedError(DetoptError, RuntimeError):
    """The training loss became NaN or inf; the model was put back to its last finite weights."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one surrogate training.

    ``lr``: Adam learning rate (AIDO sec. 3.1: 0.001). ``epochs``: upper limit on passes over the
    training split. ``batch_size``: rows per Adam step. ``val_fraction``: share of rows held out
    for early stopping (0 turns early stopping to the training loss). ``patience``: epochs
    without a better validation loss before stopping (``None``: never stop early).
    ``ema_decay``: decay of an exponential moving average of the weights, used for validation
    and returned as the final model (``None``: off). ``lr_schedule``: ``"constant"`` (AIDO) or
    ``"cosine"`` decay to ``lr * lr_min_factor`` over ``epochs``. ``device``: ``"cpu"``,
    ``"cuda"`` or ``"auto"`` (CUDA when available). ``seed``: seeds the initial weights, the split,
    the batches and the diffusion noise.
    """

    lr: float = 1e-3
    epochs: int = 100
    batch_size: int = 256
    val_fraction: float = 0.2
    patience: int | None = 10
    ema_decay: float | None = None
    lr_schedule: LrSchedule = "constant"
    lr_min_factor: float = 0.01
    device: Device = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"train.{name}", f"must be an integer >= 1, got {value!r}")

        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError("train.lr", f"must be a finite number > 0, got {self.lr!r}")
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("train.val_fraction", f"must be in [0, 1), got {self.val_fraction!r}")
        if self.patience is not None:
            positive_int("patience", self.patience)
        if self.ema_decay is not None and (
            not isinstance(self.ema_decay, (int, float)) or not 0.0 < self.ema_decay < 1.0
        ):
            raise ConfigError("train.ema_decay", f"must be in (0, 1) or None, got {self.ema_decay!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError("train.lr_schedule", f"must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not isinstance(self.lr_min_factor, (int, float)) or not 0.0 <= self.lr_min_factor <= 1.0:
            raise ConfigError("train.lr_min_factor", f"must be in [0, 1], got {self.lr_min_factor!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError("train.device", f"must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("train.seed", f"must be an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError("train", f"unknown keys {unknown}; allowed {sorted(allowed)}")
        return cls(**dict(data))

    def resolve_device(self) -> torch.device:
        """The torch device this configuration trains on."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("train.device", "'cuda' requested but torch.cuda.is_available() is False")
        return torch.device(self.device)


@dataclass
class TrainResult:
    """What a training did: per-epoch losses, where it stopped and which weights it kept."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epochs_run: int = 0
    best_epoch: int = 0
    best_loss: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0
    samples_seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cosine_factor(epoch: int, epochs: int, floor: float) -> float:
    """lr multiplier of a cosine decay from 1 to ``floor`` (Loshchilov & Hutter 2017, no restarts)."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def _copy_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_denoiser(
    denoiser: nn.Module,
    schedule: NoiseSchedule,
    cond: torch.Tensor,
    x: torch.Tensor,
    config: TrainConfig,
    prediction: Prediction = "epsilon",
    on_epoch: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fit ``denoiser`` by minimizing ``diffusion_loss`` with Adam; returns the loss history
    (``on_epoch(done, epochs)`` after every epoch, for a progress display).

    ``cond``: ``n x cond_dim`` and ``x``: ``n x *event_shape``, both standardized and finite,
    on the device the denoiser lives on. The denoiser ends with the weights of the best epoch
    (EMA weights when ``ema_decay`` is set). A non-finite loss raises ``TrainingDivergedError``
    after restoring the last finite weights, so a NaN model is never left behind.
    """
    check_prediction(prediction)
    n = x.shape[0]
    if cond.shape[0] != n:
        raise DataError(f"cond has {cond.shape[0]} rows but x has {n}")
    device = x.device
    cpu_gen = torch.Generator().manual_seed(config.seed)
    dev_gen = torch.Generator(device=device).manual_seed(config.seed + 1)

    perm = torch.randperm(n, generator=cpu_gen).to(device)
    n_val = int(round(config.val_fraction * n))
    if config.val_fraction > 0.0:
        n_val = max(n_val, 1)
    if n - n_val < 1:
        raise DataError(f"need at least one training row after the validation split; have {n} rows")
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    x_train, c_train = x[train_idx], cond[train_idx]
    x_val, c_val = x[val_idx], cond[val_idx]
    # Fixed draws make the validation loss a deterministic function of the weights.
    t_val = torch.randint(0, schedule.n_train_steps, (n_val,), generator=cpu_gen).to(device)
    noise_val = torch.randn(x_val.shape, generator=cpu_gen, dtype=x.dtype).to(device)

    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.lr)
    ema: dict[str, torch.Tensor] | None = None
    if config.ema_decay is not None:
        ema = {k: v.detach().clone() for k, v in denoiser.named_parameters()}

    result = TrainResult()
    best_state = _copy_state(denoiser)
    epochs_without_gain = 0
    started = time.perf_counter()
    n_train = x_train.shape[0]
    was_training = denoiser.training
    denoiser.train()
    try:
        for epoch in range(config.epochs):
            if config.lr_schedule == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * _cosine_factor(epoch, config.epochs, config.lr_min_factor)
            order = torch.randperm(n_train, generator=cpu_gen).to(device)
            total, batches = 0.0, 0
            for start in range(0, n_train, config.batch_size):
                idx = order[start : start + config.batch_size]
                loss = diffusion_loss(denoiser, schedule, x_train[idx], c_train[idx], prediction, dev_gen)
                value = float(loss.detach())
                if not math.isfinite(value):
                    denoiser.load_state_dict(best_state)
                    raise TrainingDivergedError(
                        f"training loss is {value} at epoch {epoch + 1}, batch {batches + 1}; the model was "
                        f"restored to its best weights (epoch {result.best_epoch}, 0 = initial); lower train.lr or "
                        "check the data scale"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    assert config.ema_decay is not None
                    with torch.no_grad():
                        for name, p in denoiser.named_parameters():
                            ema[name].lerp_(p.detach(), 1.0 - config.ema_decay)
                total += value * idx.shape[0]
                batches += 1
            result.samples_seen += n_train
            if on_epoch is not None:
                on_epoch(epoch + 1, config.epochs)
            train_loss = total / n_train
            result.train_loss.append(train_loss)

            current = _copy_state(denoiser)
            if ema is not None:
                with torch.no_grad():
                    for name, p in denoiser.named_parameters():
                        p.copy_(ema[name])
            if n_val > 0:
                denoiser.eval()
                with torch.no_grad():
                    val = diffusion_loss(denoiser, schedule, x_val, c_val, prediction, t=t_val, noise=noise_val)
                    score = float(val)
                denoiser.train()
                result.val_loss.append(score)
            else:
                score = train_loss
            if not math.isfinite(score):
                denoiser.load_state_dict(best_state)
                raise TrainingDivergedError(
                    f"validation loss is {score} at epoch {epoch + 1}; the model was restored to its best "
                    f"weights (epoch {result.best_epoch}, 0 = initial)"
                )
            evaluated = _copy_state(denoiser)  # the weights that were scored (EMA or raw)
            result.epochs_run = epoch + 1
            if score < result.best_loss:
                result.best_loss, result.best_epoch = score, epoch + 1
                best_state = evaluated
                epochs_without_gain = 0
            else:
                epochs_without_gain += 1
            if ema is not None:
                denoiser.load_state_dict(current)  # keep optimizing the raw weights
            if config.patience is not None and epochs_without_gain >= config.patience:
                result.stopped_early = True
                break
    finally:
        denoiser.train(was_training)
        optimizer.zero_grad(set_to_none=True)
    denoiser.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result
