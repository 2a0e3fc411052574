"""The per-event loss surrogate the optimizer differentiates (AIDO sec. 3.1).

A ``ConditionalDiffusion`` learns the reconstructed target given [design encoding, context,
true target]; the optimizer samples T' = S(design, C, T) with deterministic DDIM and
evaluates L' = mean Loss_reco(T', T), a differentiable function of the design.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from detopt.atomic import read_json_document, write_text_atomic
from detopt.errors import ConfigError, DataError
from detopt.surrogate.denoisers import Activation, TimeEmbedding
from detopt.surrogate.normalization import ResidualMode
from detopt.surrogate.model import DEFAULT_DDIM_STEPS, ConditionalDiffusion, SampleMethod
from detopt.surrogate.schedule import NoiseSchedule, Prediction
from detopt.surrogate.training import TrainConfig, TrainResult

#: ``loss_fn(T_pred, T_true)``: both ``n x n_targets``; returns per-event losses, ``n`` or
#: ``n x n_targets`` (then averaged over the targets of each event).
PerEventLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SURROGATE_FILE = "loss_surrogate.json"
SURROGATE_FORMAT = "detopt.surrogate.PerEventLossSurrogate"


def reconstruction_loss_per_event(t_pred: torch.Tensor, t_true: torch.Tensor) -> torch.Tensor:
    """Default per-event loss: the reconstruction's AIDO eq. 10 terms, without reduction."""
    from detopt.reconstruction.loss import energy_resolution_loss

    return energy_resolution_loss(t_pred, t_true, reduction="none")


@contextlib.contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad inside the block: the backward pass then skips weight gradients."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _check_float(value: Any, name: str, ndim: Sequence[int]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point:
        raise DataError(f"{name}: expected a floating-point torch tensor, got {type(value).__name__}")
    if value.ndim not in ndim:
        allowed = " or ".join(f"{d}-d" for d in ndim)
        raise DataError(f"{name}: expected {allowed} tensor, got shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise DataError(f"{name}: contains NaN or inf")
    return value


class PerEventLossSurrogate:
    """L'(design) = mean_i loss_fn(T'_i, T_i) with T'_i ~ S(design, C_i, T_i) (AIDO sec. 3.1).

    ``model`` conditions on ``[design (design_dim), context (context_dim), true target
    (n_targets)]`` and generates the reconstructed target (``n_targets``). ``loss_fn`` defaults to
    the reconstruction's eq.-10 loss (``detopt.reconstruction.loss.energy_resolution_loss``).
    """

    def __init__(
        self,
        model: ConditionalDiffusion,
        design_dim: int,
        context_dim: int,
        loss_fn: PerEventLoss | None = None,
    ) -> None:
        if not isinstance(model, ConditionalDiffusion):
            raise ConfigError("model", f"expected a ConditionalDiffusion, got {type(model).__name__}")
        if len(model.event_shape) != 1:
            raise ConfigError(
                "model", f"the target must be a vector (event_shape of length 1), got {model.event_shape}"
            )
        for name, value in (("design_dim", design_dim), ("context_dim", context_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"must be an integer >= 0, got {value!r}")
        n_targets = model.event_shape[0]
        if model.cond_dim != design_dim + context_dim + n_targets:
            raise ConfigError(
                "model",
                f"cond_dim {model.cond_dim} != design_dim {design_dim} + context_dim {context_dim} + "
                f"n_targets {n_targets}",
            )
        self.model = model
        self.design_dim = design_dim
        self.context_dim = context_dim
        self.n_targets = n_targets
        self.loss_fn: PerEventLoss = loss_fn if loss_fn is not None else reconstruction_loss_per_event

    @classmethod
    def build(
        cls,
        design_dim: int,
        context_dim: int,
        n_targets: int = 1,
        loss_fn: PerEventLoss | None = None,
        hidden: Sequence[int] = (200, 100),
        activation: Activation = "elu",
        time_embedding: TimeEmbedding = "scalar",
        schedule: NoiseSchedule | None = None,
        prediction: Prediction = "v",
        residual: ResidualMode = "mlp",
        embedding_dim: int = 16,
    ) -> "PerEventLossSurrogate":
        """An untrained surrogate with the AIDO MLP denoiser (Table 1 by default).

        Schedule (cosine, 100 steps), prediction and residual defaults: see ``ConditionalDiffusion.mlp``.
        """
        model = ConditionalDiffusion.mlp(
            design_dim + context_dim + n_targets,
            n_targets,
            hidden=hidden,
            activation=activation,
            time_embedding=time_embedding,
            schedule=schedule,
            prediction=prediction,
            embedding_dim=embedding_dim,
            residual=residual,
        )
        return cls(model, design_dim, context_dim, loss_fn)

    # ------------------------------------------------------------------ inputs
    def conditioning(
        self, design: torch.Tensor, context: torch.Tensor, true_target: torch.Tensor
    ) -> torch.Tensor:
        """``[design, context, true_target]``, ``n x cond_dim``; a ``(design_dim,)`` design goes to all events."""
        context = _check_float(context, "context", (2,))
        n = context.shape[0]
        if context.shape[1] != self.context_dim:
            raise DataError(
                f"context: expected shape ({n}, {self.context_dim}) (n x context_dim), got {tuple(context.shape)}"
            )
        true_target = _check_float(true_target, "true_target", (2,))
        if tuple(true_target.shape) != (n, self.n_targets):
            raise DataError(
                f"true_target: expected shape ({n}, {self.n_targets}) (n x n_targets), got {tuple(true_target.shape)}"
            )
        design = _check_float(design, "design", (1, 2))
        if design.shape[-1] != self.design_dim:
            raise DataError(
                f"design: expected last dimension {self.design_dim} (design_dim), got {tuple(design.shape)}"
            )
        if design.ndim == 1:
            design = design.unsqueeze(0)
        if design.shape[0] == 1:
            design = design.expand(n, self.design_dim)
        elif design.shape[0] != n:
            raise DataError(f"design: expected 1 or {n} rows (one per event), got {design.shape[0]}")
        dtype = torch.promote_types(design.dtype, context.dtype)
        return torch.cat([design.to(dtype), context.to(dtype), true_target.to(dtype)], dim=1)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        design: torch.Tensor,
        context: torch.Tensor,
        true_target: torch.Tensor,
        reco_target: torch.Tensor,
        config: TrainConfig | None = None,
        init_from: "PerEventLossSurrogate | None" = None,
    ) -> TrainResult:
        """Train on per-event rows: design ``n x design_dim``, context, true and reconstructed targets."""
        cond = self.conditioning(design, context, true_target)
        previous = None if init_from is None else init_from.model
        return self.model.fit(cond, reco_target, config, init_from=previous)

    # ------------------------------------------------------------------ evaluation
    def sample_targets(
        self,
        design: torch.Tensor,
        context: torch.Tensor,
        true_target: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        n_steps: int = DEFAULT_DDIM_STEPS,
        method: SampleMethod = "ddim",
        eta: float = 0.0,
    ) -> torch.Tensor:
        """T' = S(design, C, T), ``n x n_targets``, differentiable w.r.t. ``design`` (DDIM, eta=0, given noise)."""
        cond = self.conditioning(design, context, true_target)
        with _frozen(self.model):
            steps = None if method == "ddpm" else n_steps
            return self.model.sample(cond, method, steps, eta, noise, generator)

    def per_event_loss(
        self,
        design: torch.Tensor,
        context: torch.Tensor,
        true_target: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        n_steps: int = DEFAULT_DDIM_STEPS,
        method: SampleMethod = "ddim",
        eta: float = 0.0,
    ) -> torch.Tensor:
        """``loss_fn(T', T)`` per event, shape ``n``."""
        t_pred = self.sample_targets(design, context, true_target, noise, generator, n_steps, method, eta)
        t_true = true_target.to(t_pred.dtype)
        losses = self.loss_fn(t_pred, t_true)
        n = t_pred.shape[0]
        if not isinstance(losses, torch.Tensor) or losses.ndim < 1 or losses.shape[0] != n:
            shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
            raise DataError(f"loss_fn: expected per-event losses with {n} rows, got {shape}")
        return losses.reshape(n, -1).mean(dim=1)

    def __call__(
        self,
        design: torch.Tensor,
        context: torch.Tensor,
        true_target: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        n_steps: int = DEFAULT_DDIM_STEPS,
        method: SampleMethod = "ddim",
        eta: float = 0.0,
    ) -> torch.Tensor:
        """L' = mean over events of ``loss_fn(T', T)``, a 0-d tensor differentiable w.r.t. ``design``.

        ``design``: ``(design_dim,)`` (broadcast to all events) or ``n x design_dim``;
        ``context``: ``n x context_dim``; ``true_target``: ``n x n_targets``. Fix ``noise``
        (``n x n_targets``, standardized N(0, 1)) across optimizer steps for a smooth L'.
        """
        return self.per_event_loss(design, context, true_target, noise, generator, n_steps, method, eta).mean()

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """The model's two files plus ``loss_surrogate.json`` (dimensions; ``loss_fn`` is code, not saved)."""
        folder = self.model.save(directory)
        document = {
            "format": SURROGATE_FORMAT,
            "version": 1,
            "design_dim": self.design_dim,
            "context_dim": self.context_dim,
        }
        write_text_atomic(folder / SURROGATE_FILE, json.dumps(document, indent=2) + "\n")
        return folder

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        loss_fn: PerEventLoss | None = None,
        map_location: str | torch.device = "cpu",
    ) -> "PerEventLossSurrogate":
        folder = Path(directory)
        path = folder / SURROGATE_FILE
        document = read_json_document(path, SURROGATE_FORMAT)
        model = ConditionalDiffusion.load(folder, map_location)
        try:
            return cls(model, document["design_dim"], document["context_dim"], loss_fn)
        except KeyError as exc:
            raise DataError(f"{path}: missing field {exc}") from None
        except ConfigError as exc:
            raise DataError(f"{path}: does not match the model ({exc})") from None
