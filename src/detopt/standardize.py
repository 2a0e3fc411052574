"""Standardization of network inputs and outputs, fitted on training data and saved with a model."""

from __future__ import annotations

import torch
from torch import nn

from detopt.errors import DataError


class Standardizer(nn.Module):
    """Affine map x -> (x - mean) / std per feature, kept as buffers so it travels in ``state_dict``.

    Features with (near) zero spread, e.g. a one-hot column that never changes, get std 1
    so that they pass through centred instead of blowing up.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        if n_features < 0:
            raise ValueError(f"n_features must be >= 0, got {n_features}")
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    @torch.no_grad()
    def fit(self, x: torch.Tensor, min_std: float = 1e-6) -> "Standardizer":
        """Set mean and std from ``x`` (``n_samples x n_features``)."""
        self._check(x, "fit data")
        if x.shape[0] < 1:
            raise DataError("fit data: need at least one sample to fit a standardizer")
        if not torch.isfinite(x).all():
            raise DataError("fit data: contains NaN or inf")
        if self.n_features == 0:
            return self
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std < min_std, torch.ones_like(std), std)
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "input")
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Map standardized values back to physical units."""
        self._check(z, "input")
        return z * self.std.to(z) + self.mean.to(z)

    def _check(self, x: torch.Tensor, what: str) -> None:
        if x.ndim < 1 or x.shape[-1] != self.n_features:
            raise DataError(
                f"{what}: expected last dimension {self.n_features} (n_features), got shape {tuple(x.shape)}"
            )
