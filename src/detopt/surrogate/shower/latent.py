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
coordinates back onto those components. The voxel-to-voxel fluctuations outside their span
(``1 - explained_variance`` of the residual variance) are put back as independent, mean-preserving
log-normal fluctuations of each voxel's fraction with the width the training residuals have
outside the span (``tail_std``; ``cell_fluctuations``): Gaussian noise in the code instead clips the
nearly empty outer voxels at zero and pushes energy outwards (radius and dispersion means +1.0% and
+1.4% on geometry A at 32 x 32), without it the hottest voxel's share comes out 10% low.
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
    tail_std: torch.Tensor

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
        self.register_buffer("tail_std", torch.zeros(n_voxels))

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
        outside = centred - (centred @ vectors) @ vectors.T
        self.tail_std.copy_(outside.std(dim=0).to(self.tail_std))
        return self

    def forward(self, residuals: torch.Tensor) -> torch.Tensor:
        """``n x (1 + n_voxels)`` -> ``n x (1 + n_components)``: energy entry, then the component scores / their width."""
        scores = (residuals[:, 1:] - self.mean.to(residuals)) @ self.basis.to(residuals) / self.scale.to(residuals)
        return torch.cat([residuals[:, :1], scores], dim=1)

    def inverse(self, latent: torch.Tensor) -> torch.Tensor:
        """``n x (1 + n_components)`` -> ``n x (1 + n_voxels)`` on the span of the kept components (differentiable)."""
        voxels = self.mean.to(latent) + (latent[:, 1:] * self.scale.to(latent)) @ self.basis.to(latent).T
        return torch.cat([latent[:, :1], voxels], dim=1)


def cell_fluctuations(
    fractions: torch.Tensor, code_std: torch.Tensor, fraction_floor: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each voxel fraction times an independent log-normal factor of mean 1 (so the expected map is unchanged).

    ``code_std`` (``n x n_voxels``) is the width to restore in the units of the code
    log(fraction + floor); to first order that is (fraction + floor) * code_std in the fraction,
    and the factor's log-width s follows from s^2 = log(1 + (that / fraction)^2). Empty voxels stay
    empty: what independent noise can add to a voxel with no energy is a positive bias.
    """
    sigma = (fractions + fraction_floor) * code_std
    positive = fractions > 0
    variance = torch.where(positive, torch.log1p((sigma / fractions.clamp_min(torch.finfo(fractions.dtype).tiny)).square()), torch.zeros_like(fractions))
    draws = torch.randn(fractions.shape, generator=generator, dtype=fractions.dtype, device=fractions.device)
    return fractions * torch.exp(variance.sqrt() * draws - 0.5 * variance)
