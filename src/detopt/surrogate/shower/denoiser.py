"""Denoisers for shower codes: ``f(x_t, t, cond) -> prediction``, blind to the noise schedule.

``x_t`` is a noisy shower code (``n x (1 + n_depth * n_radial)``: the log total energy and the
log voxel fractions, see ``representation.py``, standardized), ``t`` the training step,
``cond`` the standardized conditioning (plus the classifier-free-guidance flag column, see
``model.py``). Three architectures, compared by measurement in ``docs/shower.md``:

- ``ShowerMLP``: the flattened code through pre-norm residual MLP blocks, the embedding of
  ``(cond, t)`` added in every block;
- ``ShowerConvNet``: the voxel fractions as a depth x radius image, with two fixed coordinate
  channels (a shower is not translation invariant: it starts at the front face and on the axis)
  and the total-energy entry broadcast as a channel; residual 3x3 convolution blocks with
  FiLM conditioning (Perez et al. 2018) on the embedding, a 3x3 convolution for the map and a
  pooled linear head for the total energy;
- ``ShowerUNet``: the same image input, through a U-Net (Ronneberger et al. 2015; the
  diffusion variant of Ho et al. 2020): residual FiLM blocks at 2-4 resolutions, strided
  convolutions down, nearest-neighbour upsampling and convolutions up, skip connections
  between levels of equal resolution. The coarse levels see the whole shower at little cost,
  which the single-resolution CNN cannot do on 32 x 32 maps.

All are built only from ``nn.Linear``, ``nn.Conv2d`` and normalization layers, so that
``peft`` can put LoRA on the first two and ``modules_to_save`` takes the last (``adaptation.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from detopt.errors import ConfigError, DataError
from detopt.standardize import Standardizer
from detopt.surrogate.denoisers import SINUSOIDAL_MAX_PERIOD, SINUSOIDAL_REFERENCE_STEPS

#: Sines and cosines of the training step fed to the embedding MLP (Ho et al. 2020, appendix B).
TIME_FEATURES: int = 32


class ShowerDenoiser(Protocol):
    """What ``ShowerDiffusion`` needs from a denoiser besides ``__call__(x_t, t, cond)``."""

    config_name: str
    cond_dim: int
    n_train_steps: int
    event_shape: tuple[int, ...]

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor: ...

    def to_config(self) -> dict[str, Any]: ...

    def reset_parameters(self, generator: torch.Generator | None = None) -> None: ...

    def parameters(self, recurse: bool = True) -> Any: ...


def sinusoidal_time_features(t: torch.Tensor, n_train_steps: int, n_features: int, dtype: torch.dtype) -> torch.Tensor:
    """Transformer position encoding of the step (Vaswani et al. 2017 sec. 3.5), on a 1000-step scale."""
    half = n_features // 2
    frequencies = torch.exp(
        -math.log(SINUSOIDAL_MAX_PERIOD) * torch.arange(half, device=t.device, dtype=torch.float64) / half
    )
    arg = (t.to(torch.float64) * (SINUSOIDAL_REFERENCE_STEPS / n_train_steps)).unsqueeze(-1) * frequencies
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1).to(dtype)


def _positive_int(value: Any, field: str, low: int = 1, high: int = 100_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field, f"must be an integer in [{low}, {high}], got {value!r}")
    return value


@torch.no_grad()
def reset_module_parameters(module: nn.Module, generator: torch.Generator | None) -> None:
    """PyTorch's default init of every Linear/Conv2d (U(+-1/sqrt(fan_in))), drawn from ``generator``.

    Normalization layers go back to weight 1, bias 0. The last layer of a denoiser (``out_*``)
    starts at zero weights, so an untrained denoiser predicts zero: the usual stable start
    of diffusion training (Dhariwal & Nichol 2021, zero-initialized output convolution).
    """
    for name, sub in module.named_modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            fan_in = sub.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            if name.rsplit(".", 1)[-1].startswith("out_"):
                sub.weight.zero_()
            else:
                sub.weight.uniform_(-bound, bound, generator=generator)
            if sub.bias is not None:
                sub.bias.uniform_(-bound, bound, generator=generator)
                if name.rsplit(".", 1)[-1].startswith("out_"):
                    sub.bias.zero_()
        elif isinstance(sub, (nn.LayerNorm, nn.GroupNorm)):
            if sub.weight is not None:
                sub.weight.fill_(1.0)
            if sub.bias is not None:
                sub.bias.zero_()


class _Embedding(nn.Module):
    """(cond, t) -> ``width`` features: sinusoidal step features and cond through a 2-layer MLP."""

    def __init__(self, cond_dim: int, width: int, n_train_steps: int) -> None:
        super().__init__()
        self.n_train_steps = n_train_steps
        self.embed_in = nn.Linear(cond_dim + TIME_FEATURES, width)
        self.embed_hidden = nn.Linear(width, width)

    def forward(self, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        time = sinusoidal_time_features(t, self.n_train_steps, TIME_FEATURES, cond.dtype)
        return self.embed_hidden(F.silu(self.embed_in(torch.cat([cond, time], dim=1))))


@torch.no_grad()
def restandardize_conditions(denoiser: nn.Module, old: Standardizer, new: Standardizer) -> None:
    """Make ``denoiser`` take conditions standardized by ``new`` and compute exactly what it computed
    with ``old``: the change of standardization is folded into the first layer of its embedding.

    The constant part of the change goes onto the guidance-flag column (the last ``cond`` column, 1
    for every conditioned row), so that the all-zero null row of classifier-free guidance still
    means "no condition". Lets an adapted model refit the standardization of the conditions on a
    new geometry's ranges while its denoiser keeps seeing the inputs it was trained on.
    """
    embedding = getattr(denoiser, "embedding", None)
    layer = getattr(embedding, "embed_in", None)
    n = old.n_features
    if not isinstance(layer, nn.Linear) or new.n_features != n or int(getattr(denoiser, "cond_dim", -1)) != n + 1:
        raise ConfigError("denoiser", f"needs a shower denoiser whose cond_dim is {n} standardized columns + the guidance flag")
    weight = layer.weight
    scale = (new.std / old.std).to(weight)
    shift = ((new.mean - old.mean) / old.std).to(weight)
    weight[:, n] += weight[:, :n] @ shift
    weight[:, :n] *= scale


class _Checks:
    cond_dim: int
    event_shape: tuple[int, ...]

    def _check(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.ndim != 2 or cond.shape[1] != self.cond_dim:
            raise DataError(f"cond: expected shape n x {self.cond_dim} (n x cond_dim), got {tuple(cond.shape)}")
        n = cond.shape[0]
        if tuple(x_t.shape) != (n, *self.event_shape):
            raise DataError(f"x_t: expected shape {(n, *self.event_shape)}, got {tuple(x_t.shape)}")
        t = torch.as_tensor(t, device=cond.device)
        if t.ndim == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise DataError(f"t: expected {n} integer steps (one per row), got shape {tuple(t.shape)}")
        return t


class ShowerMLP(_Checks, nn.Module):
    """Residual MLP over the flattened code; ``width`` features, ``n_blocks`` pre-norm blocks.

    ``components`` > 0: the model works on the energy entry and that many principal components of
    the voxel residuals (``latent.py``) instead of every voxel, and the MLP's input and output have
    ``1 + components`` entries.
    """

    config_name = "mlp"

    def __init__(
        self, n_depth: int, n_radial: int, cond_dim: int, width: int = 256, n_blocks: int = 3, n_train_steps: int = 100,
        components: int = 0,
    ) -> None:
        super().__init__()
        self.n_depth = _positive_int(n_depth, "n_depth", high=1000)
        self.n_radial = _positive_int(n_radial, "n_radial", high=1000)
        self.cond_dim = _positive_int(cond_dim, "cond_dim", low=0)
        self.width = _positive_int(width, "denoiser.width", high=8192)
        self.n_blocks = _positive_int(n_blocks, "denoiser.n_blocks", high=64)
        self.n_train_steps = _positive_int(n_train_steps, "n_train_steps", low=2)
        self.components = _positive_int(components, "components", low=0, high=n_depth * n_radial)
        code_dim = 1 + (components or n_depth * n_radial)
        self.event_shape: tuple[int, ...] = (code_dim,)
        self.embedding = _Embedding(cond_dim, width, n_train_steps)
        self.in_proj = nn.Linear(code_dim, width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(n_blocks))
        self.film = nn.ModuleList(nn.Linear(width, width) for _ in range(n_blocks))
        self.fc1 = nn.ModuleList(nn.Linear(width, 2 * width) for _ in range(n_blocks))
        self.fc2 = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(n_blocks))
        self.out_norm = nn.LayerNorm(width)
        self.out_proj = nn.Linear(width, code_dim)
        self.reset_parameters()

    def to_config(self) -> dict[str, Any]:
        return {
            "n_depth": self.n_depth, "n_radial": self.n_radial, "cond_dim": self.cond_dim, "width": self.width,
            "n_blocks": self.n_blocks, "n_train_steps": self.n_train_steps,
            **({"components": self.components} if self.components else {}),
        }

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        reset_module_parameters(self, generator)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = self._check(x_t, t, cond)
        emb = F.silu(self.embedding(t, cond))
        h = self.in_proj(x_t)
        for norm, film, fc1, fc2 in zip(self.norms, self.film, self.fc1, self.fc2):
            h = h + fc2(F.silu(fc1(norm(h) + film(emb))))
        return self.out_proj(self.out_norm(h))


#: Normalization groups of every GroupNorm in the convolutional denoisers (channels must divide).
NORM_GROUPS: int = 8


class _MapInput(_Checks):
    """Settings and input planes shared by the denoisers that see the code as a depth x radius image."""

    n_depth: int
    n_radial: int
    padded_shape: tuple[int, int]
    coordinates: torch.Tensor

    def _set_map_settings(
        self, n_depth: int, n_radial: int, cond_dim: int, channels: int, n_train_steps: int, embedding_width: int,
        stride: int = 1,
    ) -> None:
        """Check and store the common settings; sides are padded up to multiples of ``stride``."""
        self.n_depth = _positive_int(n_depth, "n_depth", high=1000)
        self.n_radial = _positive_int(n_radial, "n_radial", high=1000)
        self.cond_dim = _positive_int(cond_dim, "cond_dim", low=0)
        self.channels = _positive_int(channels, "denoiser.channels", high=1024)
        if channels % NORM_GROUPS:
            raise ConfigError(
                "denoiser.channels", f"must be a multiple of {NORM_GROUPS} ({NORM_GROUPS} normalization groups), got {channels}"
            )
        self.n_train_steps = _positive_int(n_train_steps, "n_train_steps", low=2)
        self.embedding_width = _positive_int(embedding_width, "denoiser.embedding_width", high=8192)
        self.event_shape = (1 + n_depth * n_radial,)
        self.padded_shape = (-(-n_depth // stride) * stride, -(-n_radial // stride) * stride)
        padded_depth, padded_radial = self.padded_shape
        # Grid positions scaled so that the real map spans [-1, 1]; a padding continues beyond 1.
        depth = torch.arange(padded_depth, dtype=torch.float32) * (2.0 / max(n_depth - 1, 1)) - 1.0
        radius = torch.arange(padded_radial, dtype=torch.float32) * (2.0 / max(n_radial - 1, 1)) - 1.0
        grid = torch.stack([
            depth.reshape(-1, 1).expand(padded_depth, padded_radial),
            radius.reshape(1, -1).expand(padded_depth, padded_radial),
        ])
        self.register_buffer("coordinates", grid.unsqueeze(0).contiguous(), persistent=False)  # type: ignore[attr-defined]

    def _input_planes(self, x_t: torch.Tensor) -> torch.Tensor:
        """The map (zero-padded), the total-energy entry broadcast, and the two coordinate channels."""
        n = x_t.shape[0]
        padded_depth, padded_radial = self.padded_shape
        image = x_t[:, 1:].reshape(n, 1, self.n_depth, self.n_radial)
        image = F.pad(image, (0, padded_radial - self.n_radial, 0, padded_depth - self.n_depth))
        planes = [
            image,
            x_t[:, :1].reshape(n, 1, 1, 1).expand(n, 1, padded_depth, padded_radial),
            self.coordinates.to(x_t.dtype).expand(n, 2, padded_depth, padded_radial),
        ]
        return torch.cat(planes, dim=1)


class ShowerConvNet(_MapInput, nn.Module):
    """Residual 3x3 CNN over depth x radius with FiLM conditioning (see the module docstring)."""

    config_name = "conv"

    def __init__(
        self,
        n_depth: int,
        n_radial: int,
        cond_dim: int,
        channels: int = 32,
        n_blocks: int = 3,
        n_train_steps: int = 100,
        embedding_width: int = 128,
    ) -> None:
        super().__init__()
        self._set_map_settings(n_depth, n_radial, cond_dim, channels, n_train_steps, embedding_width)
        self.n_blocks = _positive_int(n_blocks, "denoiser.n_blocks", high=64)
        c, w = channels, embedding_width
        self.embedding = _Embedding(cond_dim, w, n_train_steps)
        self.in_conv = nn.Conv2d(4, c, 3, padding=1)
        # the layout of _FiLMBlock, kept as parallel lists so that saved weights keep their names
        self.norm1 = nn.ModuleList(nn.GroupNorm(NORM_GROUPS, c) for _ in range(n_blocks))
        self.conv1 = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(n_blocks))
        self.film = nn.ModuleList(nn.Linear(w, 2 * c) for _ in range(n_blocks))
        self.norm2 = nn.ModuleList(nn.GroupNorm(NORM_GROUPS, c) for _ in range(n_blocks))
        self.conv2 = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(n_blocks))
        self.out_norm = nn.GroupNorm(NORM_GROUPS, c)
        self.out_conv = nn.Conv2d(c, 1, 3, padding=1)
        self.total_hidden = nn.Linear(c + w + 1, w)
        self.out_total = nn.Linear(w, 1)
        self.reset_parameters()

    def to_config(self) -> dict[str, Any]:
        return {
            "n_depth": self.n_depth, "n_radial": self.n_radial, "cond_dim": self.cond_dim, "channels": self.channels,
            "n_blocks": self.n_blocks, "n_train_steps": self.n_train_steps, "embedding_width": self.embedding_width,
        }

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        reset_module_parameters(self, generator)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = self._check(x_t, t, cond)
        n = x_t.shape[0]
        emb = F.silu(self.embedding(t, cond))
        total = x_t[:, :1]
        h = self.in_conv(self._input_planes(x_t))
        for norm1, conv1, film, norm2, conv2 in zip(self.norm1, self.conv1, self.film, self.norm2, self.conv2):
            scale, shift = film(emb).reshape(n, 2, self.channels, 1, 1).unbind(dim=1)
            r = conv1(F.silu(norm1(h)))
            r = norm2(r) * (1.0 + scale) + shift
            h = h + conv2(F.silu(r))
        h = F.silu(self.out_norm(h))
        out_map = self.out_conv(h).reshape(n, self.n_depth * self.n_radial)
        pooled = torch.cat([h.mean(dim=(2, 3)), emb, total], dim=1)
        out_total = self.out_total(F.silu(self.total_hidden(pooled)))
        return torch.cat([out_total, out_map], dim=1)


#: Resolution levels a ``ShowerUNet`` may have: one is a plain CNN, beyond four the coarsest
#: level of a 32 x 32 map would be 2 x 2.
UNET_LEVELS: tuple[int, ...] = (2, 3, 4)

class _FiLMBlock(nn.Module):
    """GroupNorm-SiLU-conv, FiLM (scale, shift) from the embedding, GroupNorm-SiLU-conv, plus a skip.

    The skip is the identity when the channel count is kept, a 1x1 convolution otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, embedding_width: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.norm1 = nn.GroupNorm(NORM_GROUPS, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.film = nn.Linear(embedding_width, 2 * out_channels)
        self.norm2 = nn.GroupNorm(NORM_GROUPS, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb).reshape(h.shape[0], 2, self.out_channels, 1, 1).unbind(dim=1)
        r = self.conv1(F.silu(self.norm1(h)))
        r = self.norm2(r) * (1.0 + scale) + shift
        r = self.conv2(F.silu(r))
        return (h if self.skip is None else self.skip(h)) + r


class ShowerUNet(_MapInput, nn.Module):
    """U-Net over depth x radius with FiLM conditioning (see the module docstring).

    ``channels`` at the finest level, twice that at every coarser one; ``n_blocks`` residual
    blocks per level on the way down and on the way up; ``levels`` resolutions (each halves
    both axes). Maps whose sides are not multiples of 2^(levels - 1) are padded with zeros
    at the back and outer edge and cropped again; the coordinate channels continue linearly
    into the padding, so the network knows where the real map ends.
    """

    config_name = "unet"

    def __init__(
        self,
        n_depth: int,
        n_radial: int,
        cond_dim: int,
        channels: int = 16,
        n_blocks: int = 1,
        levels: int = 3,
        n_train_steps: int = 100,
        embedding_width: int = 128,
    ) -> None:
        super().__init__()
        if isinstance(levels, bool) or levels not in UNET_LEVELS:
            raise ConfigError("denoiser.levels", f"must be one of {list(UNET_LEVELS)}, got {levels!r}")
        self.levels = levels
        self._set_map_settings(n_depth, n_radial, cond_dim, channels, n_train_steps, embedding_width, 2 ** (levels - 1))
        self.n_blocks = _positive_int(n_blocks, "denoiser.n_blocks", high=16)
        widths = [channels * (1 if k == 0 else 2) for k in range(levels)]
        w = embedding_width
        self.embedding = _Embedding(cond_dim, w, n_train_steps)
        self.in_conv = nn.Conv2d(4, channels, 3, padding=1)
        self.down_blocks = nn.ModuleList(
            nn.ModuleList(_FiLMBlock(widths[k - 1] if k and b == 0 else widths[k], widths[k], w) for b in range(n_blocks))
            for k in range(levels)
        )
        self.downsample = nn.ModuleList(nn.Conv2d(widths[k], widths[k], 3, stride=2, padding=1) for k in range(levels - 1))
        self.mid_block = _FiLMBlock(widths[-1], widths[-1], w)
        self.upsample = nn.ModuleList(nn.Conv2d(widths[k + 1], widths[k], 3, padding=1) for k in range(levels - 1))
        self.up_blocks = nn.ModuleList(
            nn.ModuleList(_FiLMBlock(2 * widths[k] if b == 0 else widths[k], widths[k], w) for b in range(n_blocks))
            for k in range(levels - 1)
        )
        self.out_norm = nn.GroupNorm(NORM_GROUPS, channels)
        self.out_conv = nn.Conv2d(channels, 1, 3, padding=1)
        self.total_hidden = nn.Linear(channels + widths[-1] + w + 1, w)
        self.out_total = nn.Linear(w, 1)
        self.reset_parameters()

    def to_config(self) -> dict[str, Any]:
        return {
            "n_depth": self.n_depth, "n_radial": self.n_radial, "cond_dim": self.cond_dim, "channels": self.channels,
            "n_blocks": self.n_blocks, "levels": self.levels, "n_train_steps": self.n_train_steps,
            "embedding_width": self.embedding_width,
        }

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        reset_module_parameters(self, generator)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = self._check(x_t, t, cond)
        n = x_t.shape[0]
        emb = F.silu(self.embedding(t, cond))
        total = x_t[:, :1]
        h = self.in_conv(self._input_planes(x_t))
        skips = []
        for k, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, emb)
            if k < self.levels - 1:
                skips.append(h)
                h = self.downsample[k](h)
        h = self.mid_block(h, emb)
        coarse = h.mean(dim=(2, 3))
        for k in reversed(range(self.levels - 1)):
            skip = skips[k]
            h = self.upsample[k](F.interpolate(h, size=skip.shape[2:], mode="nearest"))
            h = torch.cat([h, skip], dim=1)
            for block in self.up_blocks[k]:
                h = block(h, emb)
        h = F.silu(self.out_norm(h))
        out_map = self.out_conv(h)[:, :, : self.n_depth, : self.n_radial].reshape(n, self.n_depth * self.n_radial)
        fine = h[:, :, : self.n_depth, : self.n_radial].mean(dim=(2, 3))
        out_total = self.out_total(F.silu(self.total_hidden(torch.cat([fine, coarse, emb, total], dim=1))))
        return torch.cat([out_total, out_map], dim=1)


#: Denoiser classes ``ShowerDiffusion.load`` can rebuild, by ``config_name``.
SHOWER_DENOISERS: Mapping[str, type[nn.Module]] = {"mlp": ShowerMLP, "conv": ShowerConvNet, "unet": ShowerUNet}


def build_denoiser(kind: str, config: Mapping[str, Any]) -> nn.Module:
    """A denoiser of registered ``kind`` from its ``to_config`` dict; ``ConfigError`` on unknown kinds/keys."""
    if kind not in SHOWER_DENOISERS:
        raise ConfigError("denoiser", f"must be one of {sorted(SHOWER_DENOISERS)}, got {kind!r}")
    try:
        return SHOWER_DENOISERS[kind](**dict(config))
    except TypeError as exc:
        raise ConfigError("denoiser", f"invalid settings for {kind!r}: {exc}") from None
