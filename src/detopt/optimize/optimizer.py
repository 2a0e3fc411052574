"""The design optimizer: Adam on the continuous values and the logits of the discrete parameters (AIDO 3.2, 5).

The optimized tensors are the values of the optimizable continuous parameters and,
for every optimizable discrete parameter, its logits z with P = softmax(z). The
design tensor handed to the objective is the encoding of
:class:`~detopt.design.DesignSpace` (continuous values, then probabilities), so the
surrogate, trained on one-hot vectors, sees fractional probabilities (AIDO section 5).

The continuous values are optimized in normalized coordinates u = theta / scale (scale: each
parameter's sampling width sigma), so that one learning rate, in units of sigma per step,
serves a thickness in micrometres next to one in metres; ``scale`` of ones is the paper's raw
parametrization.

After every Adam step the trust-region test (AIDO eq. 4) is made; the first step that
fails it ends the optimization of this iteration and is undone (the design stays the
last one inside the region). The probabilities of a discrete parameter have a trust region
of their own: no probability moves by more than ``max_probability_change`` in one call of
:meth:`DesignOptimizer.run` (the step is shortened along the simplex). Adam's moments can be
reset per iteration (:meth:`DesignOptimizer.reset_moments`) or carried across iterations
(:meth:`DesignOptimizer.save` / :meth:`DesignOptimizer.load`) as in the paper.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from detopt.atomic import (
    read_json_document,
    read_weights,
    write_bytes_atomic,
    write_text_atomic,
)
from detopt.design import DesignSpace
from detopt.errors import ConfigError, DataError
from detopt.optimize.trust_region import TRUST_REGION_B, mahalanobis, trust_region_ok

__all__ = ["DesignOptimizer", "Objective", "OptimizationResult", "OptimizationStatus"]

Objective = Callable[[torch.Tensor], "tuple[torch.Tensor, dict[str, float]]"]
"""design tensor (``encoding_size``, float64) -> (L_opt 0-d tensor, named parts as floats)."""

STATE_FILE = "design_optimizer.safetensors"
META_FILE = "design_optimizer.json"
FORMAT = "detopt.design_optimizer/2"


class OptimizationStatus(str, enum.Enum):
    """Why the optimization of one iteration stopped."""

    LEFT_TRUST_REGION = "left_trust_region"  # AIDO eq. 4 failed: retrain the surrogate around the new design
    MAX_STEPS = "max_steps"  # the step budget of one iteration was used up inside the region
    NOTHING_TO_OPTIMIZE = "nothing_to_optimize"
    BEST_OF_GLOBAL_PHASE = "best_of_global_phase"  # the global first phase moves to the best design it simulated


@dataclass
class OptimizationResult:
    """Outcome of :meth:`DesignOptimizer.run`: status, accepted steps, the objective per step and distance."""

    status: OptimizationStatus
    steps: int
    objective: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)
    mahalanobis: float = 0.0

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["status"] = self.status.value
        return out


class DesignOptimizer:
    """Adam (AIDO section 3.2, lr 0.01 by default) over the optimizable parameters of a design space.

    ``lr`` applies to the normalized continuous values (units of ``scale`` per step at most;
    with ``scale`` None, the parameters' own unit), ``lr_discrete`` (default ``lr``) to the logits.
    ``max_probability_change`` (None: no limit) is the trust region of the probabilities.
    """

    def __init__(
        self,
        space: DesignSpace,
        lr: float = 0.01,
        lr_discrete: float | None = None,
        scale: np.ndarray | None = None,
        max_probability_change: float | None = None,
    ) -> None:
        for name, value in (("lr", lr), ("lr_discrete", lr if lr_discrete is None else lr_discrete)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ConfigError(f"optimizer.{name}", f"must be a finite number > 0, got {value!r}")
        n = len(space.optimizable_continuous)
        scale_array = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
        if scale_array.shape != (n,) or not np.all(np.isfinite(scale_array) & (scale_array > 0)):
            raise ConfigError("scale", f"must hold {n} finite values > 0 (one per optimizable continuous parameter)")
        m = max_probability_change
        if m is not None and not (isinstance(m, (int, float)) and 0 < m <= 1):
            raise ConfigError("optimizer.max_probability_change", f"must be in (0, 1], got {m!r}")
        self.lr = float(lr)
        self.lr_discrete = float(lr if lr_discrete is None else lr_discrete)
        self.max_probability_change = None if m is None else float(m)
        self.scale = torch.as_tensor(scale_array, dtype=torch.float64)
        self._space = space
        self.normalized = torch.tensor(
            [p.value for p in space.optimizable_continuous], dtype=torch.float64
        ).div_(self.scale).requires_grad_(True)
        self._discrete = [p for p in space.discrete if p.optimizable]
        self.logits = [torch.tensor(p.logits, dtype=torch.float64, requires_grad=True) for p in self._discrete]
        self.adam = self._new_adam()

    def _new_adam(self) -> torch.optim.Adam | None:
        groups = []
        if self.normalized.numel():
            groups.append({"params": [self.normalized], "lr": self.lr})
        if self.logits:
            groups.append({"params": self.logits, "lr": self.lr_discrete})
        return torch.optim.Adam(groups) if groups else None

    def reset_moments(self) -> None:
        """Forget Adam's moments (a fresh Adam for a new surrogate); the design stays where it is."""
        self.adam = self._new_adam()

    @property
    def values(self) -> torch.Tensor:
        """The optimizable continuous values in their own unit (differentiable)."""
        return self.normalized * self.scale

    # ------------------------------------------------------------------ design tensor
    def encoding(self) -> torch.Tensor:
        """The design tensor (``encoding_size``, float64), differentiable in the values and logits."""
        space = self._space
        parts: list[torch.Tensor] = []
        values = self.values
        j = 0
        for p in space.continuous:
            if p.optimizable:
                parts.append(values[j : j + 1])
                j += 1
            else:
                parts.append(torch.tensor([p.value], dtype=torch.float64))
        k = 0
        for p in space.discrete:
            if p.optimizable:
                parts.append(torch.softmax(self.logits[k], dim=0))
                k += 1
            else:
                onehot = torch.zeros(len(p.categories), dtype=torch.float64)
                onehot[p.categories.index(p.most_probable)] = 1.0
                parts.append(onehot)
        return torch.cat(parts)

    def continuous_values(self) -> np.ndarray:
        """Current values of the optimizable continuous parameters."""
        return self.values.detach().numpy().copy()

    def probabilities(self) -> list[np.ndarray]:
        """softmax(z) of every optimizable discrete parameter."""
        return [torch.softmax(z.detach(), 0).numpy() for z in self.logits]

    def set_space(self, space: DesignSpace) -> None:
        """Move the optimized tensors to the values and probabilities of ``space`` (same parameters).

        Logits are kept where softmax(z) already equals the space's probabilities, so that
        the logits (not only their softmax) carry over between iterations.
        """
        self._space = space
        with torch.no_grad():
            values = torch.tensor([p.value for p in space.optimizable_continuous], dtype=torch.float64)
            self.normalized.copy_(values / self.scale)
            for z, p in zip(self.logits, self._discrete):
                target = torch.tensor(space[p.name].probabilities, dtype=torch.float64)  # type: ignore[union-attr]
                if not torch.allclose(torch.softmax(z, 0), target, rtol=0, atol=1e-12):
                    z.copy_(torch.log(target.clamp_min(1e-12)))

    def updated_space(self) -> DesignSpace:
        """The design space at the optimizer's values (clipped into the bounds) and softmax probabilities."""
        values = {p.name: float(v) for p, v in zip(self._space.optimizable_continuous, self.values.detach())}
        probabilities = {p.name: torch.softmax(z.detach(), 0).numpy() for p, z in zip(self._discrete, self.logits)}
        return self._space.with_values(values, probabilities, clip=True)

    # ------------------------------------------------------------------ optimize
    def run(
        self,
        objective: Objective,
        covariance: np.ndarray,
        b: float = TRUST_REGION_B,
        max_steps: int = 1000,
    ) -> OptimizationResult:
        """Adam steps on ``objective`` until AIDO eq. 4 fails (that step is undone) or ``max_steps``.

        The trust region is centred on the values at the start of the call, with the
        sampling covariance ``covariance`` of this iteration. The values are clipped into
        their bounds at the end.
        """
        if self.adam is None:
            return OptimizationResult(OptimizationStatus.NOTHING_TO_OPTIMIZE, 0)
        center = self.continuous_values()
        start_probabilities = [torch.softmax(z.detach(), 0) for z in self.logits]
        result = OptimizationResult(OptimizationStatus.MAX_STEPS, 0)
        for _ in range(max_steps):
            previous = [self.normalized.detach().clone(), *(z.detach().clone() for z in self.logits)]
            self.adam.zero_grad(set_to_none=True)
            loss, parts = objective(self.encoding())
            if not torch.isfinite(loss):
                raise DataError(f"optimizer objective is {float(loss)} at step {result.steps}: check the surrogate and penalties")
            loss.backward()
            self.adam.step()
            if self.max_probability_change is not None:
                self._limit_probability_change(start_probabilities)
            values = self.continuous_values()
            distance = mahalanobis(values - center, covariance) if center.size else 0.0
            result.objective.append(float(loss.detach()))
            result.parts.append(parts)
            if center.size and not trust_region_ok(values, center, covariance, b):
                with torch.no_grad():
                    self.normalized.copy_(previous[0])
                    for z, old in zip(self.logits, previous[1:]):
                        z.copy_(old)
                result.status = OptimizationStatus.LEFT_TRUST_REGION
                break
            result.steps += 1
            result.mahalanobis = distance
        with torch.no_grad():
            low = torch.tensor([p.bounds[0] for p in self._space.optimizable_continuous], dtype=torch.float64)
            high = torch.tensor([p.bounds[1] for p in self._space.optimizable_continuous], dtype=torch.float64)
            self.normalized.copy_(torch.minimum(torch.maximum(self.values, low), high) / self.scale)
        return result

    def _limit_probability_change(self, start: list[torch.Tensor]) -> None:
        """Shorten each discrete step along the simplex so that no probability moves by more than the limit."""
        limit = float(self.max_probability_change)  # type: ignore[arg-type]
        with torch.no_grad():
            for z, p0 in zip(self.logits, start):
                p = torch.softmax(z, 0)
                change = float((p - p0).abs().max())
                if change > limit:
                    z.copy_(torch.log((p0 + (limit / change) * (p - p0)).clamp_min(1e-12)))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write the optimized tensors and Adam's state (safetensors + JSON, atomically)."""
        from safetensors.torch import save as st_save

        tensors: dict[str, torch.Tensor] = {"normalized": self.normalized.detach().clone(), "scale": self.scale.clone()}
        for k, z in enumerate(self.logits):
            tensors[f"logits.{k}"] = z.detach().clone()
        state = self.adam.state_dict() if self.adam is not None else {"state": {}, "param_groups": []}
        for index, entry in state["state"].items():
            for key, value in entry.items():
                tensors[f"adam.{index}.{key}"] = torch.as_tensor(value).detach().clone().reshape(-1) if key == "step" else value.detach().clone()
        write_bytes_atomic(Path(directory) / STATE_FILE, st_save({k: v.contiguous() for k, v in tensors.items()}))
        meta = {"format": FORMAT, "lr": self.lr, "lr_discrete": self.lr_discrete,
                "max_probability_change": self.max_probability_change, "param_groups": state["param_groups"]}
        write_text_atomic(Path(directory) / META_FILE, json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path, space: DesignSpace) -> DesignOptimizer:
        """Read what :meth:`save` wrote; ``space`` supplies the parameters (its values are replaced)."""
        directory = Path(directory)
        meta = read_json_document(directory / META_FILE, FORMAT)
        state_path = directory / STATE_FILE
        tensors = read_weights(state_path, None, META_FILE)  # the optimizer state records no checksum
        try:
            obj = cls(space, lr=meta["lr"], lr_discrete=meta["lr_discrete"], scale=tensors["scale"].numpy(),
                      max_probability_change=meta["max_probability_change"])
            with torch.no_grad():
                obj.normalized.copy_(tensors["normalized"])
                for k, z in enumerate(obj.logits):
                    z.copy_(tensors[f"logits.{k}"])
            if obj.adam is not None:
                state: dict[int, dict[str, torch.Tensor]] = {}
                for key, value in tensors.items():
                    if key.startswith("adam."):
                        _, index, name = key.split(".", 2)
                        state.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
                obj.adam.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        except KeyError as exc:
            raise DataError(f"{directory}: the design optimizer state lacks {exc} ({META_FILE} / {STATE_FILE})") from None
        except (TypeError, ValueError, RuntimeError, IndexError, AttributeError, ConfigError) as exc:
            raise DataError(f"{directory}: the design optimizer state does not fit this design ({exc})") from None
        if not all(torch.isfinite(t).all() for t in (obj.normalized, *obj.logits)):
            raise DataError(f"{state_path}: the design values hold NaN or inf")
        return obj
