"""The diffusion's coordinates for fine grids: leading principal components of the voxel residuals.

After the conditional normalization every voxel entry of a shower's code is a residual of unit
width, and on a 32 x 32 grid most of that width is independent voxel-to-voxel noise: on geometry A
the first 8 of 1,024 principal components carry 29% of the variance and the next ones ~0.1% each.
What decides the shower's observables (its depth, breadth and how they move together) sits in the
leading components, but with a denoiser over all 1,024 entries, MLP or U-Net, the observables
made of them (radius, dispersion) come out a median 14-18% too narrow per condition (docs/shower.md,
"The paper's resolution"); on K components, -1 to -7%. Here the voxel
residuals are projected onto their ``n_components`` leading principal components (fitted on the
training residuals) and scaled to unit variance, so each global mode is one coordinate the denoiser
sees directly; the log total energy entry passes unchanged. Decoding maps the generated
coordinates back onto those components and drops the rest: the uncorrelated voxel-level
fluctuations beyond them are not generated (their share of the variance is recorded as
``explained_variance``).
"""

from __future__ import annotations

import torch
from torch import nn

from detopt.errors import ConfigError, DataError


class PrincipalComponents(nn.Module):
    """[energy, voxels] (``n x (1 + n_voxels)``) <-> [energy, unit-variance component scores] (``n x (1 + k)``)."""

    mean: torch.Tensor
    basis: torch.Tensor
    scale: torch.Tensor
    explained: torch.Tensor

    def __init__(self, n_voxels: int, n_components: int) -> None:
        super().__init__()
        if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= n_voxels:
            raise ConfigError("components", f"must be an integer in [1, {n_voxels}] (the number of voxels), got {n_components!r}")
        self.n_voxels = n_voxels
        self.n_components = n_components
        self.register_buffer("mean", torch.zeros(n_voxels))
        self.register_buffer("basis", torch.eye(n_voxels)[:, :n_components].clone())
        self.register_buffer("scale", torch.ones(n_components))
        self.register_buffer("explained", torch.zeros(()))

    @property
    def explained_variance(self) -> float:
        """Share of the voxel residuals' total variance in the kept components (after ``fit``)."""
        return float(self.explained)

    @torch.no_grad()
    def fit(self, residuals: torch.Tensor) -> "PrincipalComponents":
        """Leading eigenvectors of the covariance of ``residuals`` (``n x (1 + n_voxels)``; the energy column is skipped)."""
        if residuals.ndim != 2 or residuals.shape[1] != 1 + self.n_voxels or residuals.shape[0] < 2:
            raise DataError(f"principal components: expected at least 2 rows of {1 + self.n_voxels} entries, got {tuple(residuals.shape)}")
        voxels = residuals[:, 1:].to(torch.float64)
        mean = voxels.mean(dim=0)
        centred = voxels - mean
        covariance = centred.T @ centred / (voxels.shape[0] - 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        order = torch.argsort(eigenvalues, descending=True)[: self.n_components]
        vectors = eigenvectors[:, order]
        # a fixed sign per component (largest entry positive), so that a refit on the same data gives the same basis
        signs = torch.sign(vectors.gather(0, vectors.abs().argmax(dim=0, keepdim=True)))
        vectors = vectors * signs
        kept = eigenvalues[order].clamp_min(0.0)
        floor = 1e-12 * eigenvalues.clamp_min(0.0).sum().clamp_min(1e-300)
        self.mean.copy_(mean.to(self.mean))
        self.basis.copy_(vectors.to(self.basis))
        self.scale.copy_(torch.sqrt(kept + floor).to(self.scale))
        self.explained.copy_((kept.sum() / eigenvalues.clamp_min(0.0).sum().clamp_min(1e-300)).to(self.explained))
        return self

    def forward(self, residuals: torch.Tensor) -> torch.Tensor:
        """``n x (1 + n_voxels)`` -> ``n x (1 + n_components)``: energy entry, then the component scores / their width."""
        scores = (residuals[:, 1:] - self.mean.to(residuals)) @ self.basis.to(residuals) / self.scale.to(residuals)
        return torch.cat([residuals[:, :1], scores], dim=1)

    def inverse(self, latent: torch.Tensor) -> torch.Tensor:
        """``n x (1 + n_components)`` -> ``n x (1 + n_voxels)`` on the span of the kept components (differentiable)."""
        voxels = self.mean.to(latent) + (latent[:, 1:] * self.scale.to(latent)) @ self.basis.to(latent).T
        return torch.cat([latent[:, :1], voxels], dim=1)
