"""The reconstruction loss of the AIDO paper (eq. 10), the one place it is written down.

The reconstruction trains on it, the linear baseline is fitted to minimize it, and the
per-event loss surrogate of the optimizer imports it with ``reduction="none"``.
"""

from __future__ import annotations

from typing import Literal

import torch

from detopt.errors import ConfigError, DataError

#: The "+1" of AIDO eq. 10 (GeV): keeps the weight 1/(E_true + 1) finite for soft particles
#: and sets where the loss turns from absolute (E << 1 GeV) to relative (E >> 1 GeV) errors.
LOSS_OFFSET_GEV: float = 1.0

Reduction = Literal["mean", "sum", "none"]


def energy_resolution_loss(
    e_rec: torch.Tensor,
    e_true: torch.Tensor,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """AIDO eq. 10: mean((E_rec - E_true)^2 / (E_true + 1)), energies in GeV.

    ``e_rec`` and ``e_true`` must have the same shape (any shape, e.g. ``n_events`` or
    ``n_designs x n_events``); shapes are not broadcast, because an ``n x 1`` against an
    ``n`` tensor would silently give an ``n x n`` loss. ``reduction="none"`` returns the
    per-event terms (same shape as the inputs), ``"mean"`` their mean (a 0-d tensor),
    ``"sum"`` their sum. Differentiable in both arguments.
    """
    if not isinstance(e_rec, torch.Tensor) or not isinstance(e_true, torch.Tensor):
        raise DataError(
            "energy_resolution_loss: e_rec and e_true must be torch tensors, got "
            f"{type(e_rec).__name__} and {type(e_true).__name__}"
        )
    if e_rec.shape != e_true.shape:
        raise DataError(
            f"energy_resolution_loss: e_rec shape {tuple(e_rec.shape)} differs from e_true shape "
            f"{tuple(e_true.shape)}; they must match event by event"
        )
    if reduction not in ("mean", "sum", "none"):
        raise ConfigError("reduction", f"must be 'mean', 'sum' or 'none', got {reduction!r}")
    per_event = (e_rec - e_true) ** 2 / (e_true + LOSS_OFFSET_GEV)
    if reduction == "none":
        return per_event
    if per_event.numel() == 0:
        raise DataError("energy_resolution_loss: no events to reduce over")
    return per_event.mean() if reduction == "mean" else per_event.sum()


def relative_resolution_loss(t_rec: torch.Tensor, t_true: torch.Tensor) -> torch.Tensor:
    """Per-event ((T_rec - T_true) / T_true)^2: the relative resolution squared (e.g. sigma_p / p)."""
    if t_rec.shape != t_true.shape:
        raise DataError(f"relative_resolution_loss: shapes {tuple(t_rec.shape)} and {tuple(t_true.shape)} differ")
    return ((t_rec - t_true) / t_true) ** 2


def squared_error_loss(t_rec: torch.Tensor, t_true: torch.Tensor) -> torch.Tensor:
    """Per-event (T_rec - T_true)^2 (mean squared error once averaged)."""
    if t_rec.shape != t_true.shape:
        raise DataError(f"squared_error_loss: shapes {tuple(t_rec.shape)} and {tuple(t_true.shape)} differ")
    return (t_rec - t_true) ** 2


def _eq10_per_event(t_rec: torch.Tensor, t_true: torch.Tensor) -> torch.Tensor:
    return energy_resolution_loss(t_rec, t_true, reduction="none")


BUILTIN_LOSSES = {
    "energy_resolution": _eq10_per_event,
    "relative_resolution": relative_resolution_loss,
    "mse": squared_error_loss,
}
"""Per-event losses by the name a run configuration uses (``loss:``)."""
