"""``ShowerDiffusion``: a conditional diffusion model of calorimeter energy maps.

Data flow: map (GeV, ``n_depth x n_radial``) -> code (``representation.py``: log total energy
and log voxel fractions, exactly invertible) -> per-feature standardization -> conditional
residual (``detopt.surrogate.normalization.ConditionalAffine``: what a regression on the
conditioning explains is removed, so the diffusion generates unit-width residuals) -> with an
MLP denoiser built with ``components`` > 0, the energy entry and the leading principal components
of the voxel residuals, scaled to unit width (``latent.py``; for fine grids) -> denoiser
(``denoiser.py``). The noise schedule, the training loop and the DDIM sampler are the surrogate
core's (``NoiseSchedule``, ``train_denoiser``, ``ddim_sample``, ``dpm_solver_sample``); the denoiser never sees betas.

Conditioning: a vector of named physical quantities (``condition_names``, e.g. beam energy,
particle one-hot, material properties, depth); the columns in ``log_conditions`` enter as
their log. A last constant column 1 marks "conditioned"; classifier-free guidance (Ho &
Salimans 2022) trains with the whole conditioning row zeroed with probability
``guidance_dropout`` and samples with eps = (1 + w) eps(c) - w eps(null).

The range of every condition column seen in training is recorded; sampling outside it issues
an ``ExtrapolationWarning`` and ``extrapolation()`` returns the messages for output files.

Saved as ``shower_model.safetensors`` + ``shower_model.json`` (configuration, condition names,
training range, SHA-256 of the weights). Never pickled.
"""

from __future__ import annotations

from collections.abc import Callable

import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detopt.atomic import read_json_document, read_weights, write_weights_document
from detopt.errors import ConfigError, DataError
from detopt.standardize import Standardizer
from detopt.surrogate.normalization import BASELINE_BATCH, RESIDUAL_MODES, ConditionalAffine, ResidualMode
from detopt.surrogate.samplers import ddim_sample, dpm_solver_sample
from detopt.surrogate.schedule import NoiseSchedule, Prediction, check_prediction
from detopt.surrogate.shower.denoiser import build_denoiser
from detopt.surrogate.shower.latent import PrincipalComponents, cell_fluctuations
from detopt.surrogate.shower.representation import FRACTION_FLOOR, ShowerRepresentation, check_maps
from detopt.surrogate.training import TrainConfig, TrainResult, train_denoiser

WEIGHTS_FILE = "shower_model.safetensors"
CONFIG_FILE = "shower_model.json"
FORMAT_NAME = "detopt.surrogate.shower.ShowerDiffusion"
FORMAT_VERSION = 1

#: DDIM steps when none are given (the paper's reference code uses 50; the issue asks <= 20).
DEFAULT_SAMPLE_STEPS: int = 10

#: Relative slack on the recorded training range before a condition counts as extrapolation:
#: the range of a float32 data set read back can differ from float64 by ~1e-7 relative.
RANGE_TOLERANCE: float = 1e-6


#: Generated codes are clipped to the range of the training codes widened by this share of it on
#: each side (like the x0 clipping of DDPM samplers, Ho et al. 2020 code): a rare sampler excursion
#: in a nearly empty voxel, where the log code is steep, cannot become a spurious energy deposit.
CODE_MARGIN: float = 0.1

#: Passes over the data of the ``"mlp"`` residual's likelihood fit (the core's 20 epochs are ~600
#: Adam steps on 30,000 showers). Measured on held-out conditions (docs/shower.md): on 30,000 showers of
#: geometry A the per-condition width of the normalized log total energy scatters by 22% (rms of its
#: log) after 600 steps, 8% after 3,000 and 7.5% after 9,000; on 3,000 showers of geometry B it scatters
#: by 8% after 150-400 steps but 17% after 4,000 (the network learns the showers, not the conditions).
#: A fixed number of passes (4,000 steps on 30,000 showers) is near the best at every size.
RESIDUAL_FIT_EPOCHS: int = 135


def residual_fit_steps(n_showers: int) -> int:
    """Adam steps of the residual's likelihood fit on ``n_showers`` showers: ``RESIDUAL_FIT_EPOCHS`` passes."""
    return RESIDUAL_FIT_EPOCHS * max(1, math.ceil(n_showers / BASELINE_BATCH))


class ExtrapolationWarning(UserWarning):
    """Conditions outside the range the shower model was trained on."""


def state_checksum(module: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a module's ``state_dict`` (sorted by name).

    Identifies a base model independently of how it was saved; adapters record it.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return digest.hexdigest()


def as_tensor(values: Any, field: str, n_columns: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A 2-d floating tensor ``n x n_columns`` from numpy/torch/lists, or ``DataError`` naming ``field``."""
    if isinstance(values, torch.Tensor):
        tensor = values if values.dtype.is_floating_point else values.to(dtype)
    else:
        try:
            tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=dtype)
        except (TypeError, ValueError):
            raise DataError(f"{field}: expected an array of numbers, got {type(values).__name__}") from None
    if tensor.ndim != 2 or tensor.shape[1] != n_columns:
        raise DataError(f"{field}: expected shape (n, {n_columns}), got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise DataError(f"{field}: contains NaN or inf")
    return tensor


class _ConditionDropout(nn.Module):
    """Training wrapper: zero the whole conditioning row (the guidance flag too) with probability ``p``."""

    def __init__(self, denoiser: nn.Module, p: float, seed: int) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.training and self.p > 0.0:
            keep = (torch.rand(cond.shape[0], generator=self.generator) >= self.p).to(cond)
            cond = cond * keep.unsqueeze(1)
        return self.denoiser(x_t, t, cond)


def guided_denoiser(denoiser: nn.Module, guidance: float) -> Any:
    """Classifier-free guidance, Ho & Salimans (2022) eq. 6: (1 + w) f(x, t, c) - w f(x, t, null)."""
    if guidance == 0.0:
        return denoiser

    def call(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        n = cond.shape[0]
        both = denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, torch.zeros_like(cond)]))
        conditioned, unconditioned = both[:n], both[n:]
        return conditioned + guidance * (conditioned - unconditioned)

    return call


class ShowerDiffusion(nn.Module):
    """Conditional diffusion model of energy maps (see the module docstring)."""

    cond_low: torch.Tensor
    cond_high: torch.Tensor
    code_low: torch.Tensor
    code_high: torch.Tensor

    def __init__(
        self,
        denoiser: nn.Module,
        condition_names: Sequence[str],
        schedule: NoiseSchedule | None = None,
        prediction: Prediction = "v",
        residual: ResidualMode = "mlp",
        log_conditions: Sequence[str] = ("energy_gev",),
        guidance_dropout: float = 0.0,
        fraction_floor: float = FRACTION_FLOOR,
    ) -> None:
        super().__init__()
        names = tuple(str(c) for c in condition_names)
        if not names or len(set(names)) != len(names):
            raise ConfigError("condition_names", f"need distinct, non-empty names, got {list(names)}")
        for attr in ("config_name", "cond_dim", "n_train_steps", "n_depth", "n_radial", "to_config"):
            if not hasattr(denoiser, attr):
                raise ConfigError("denoiser", f"{type(denoiser).__name__} lacks {attr!r}; use a shower denoiser")
        if int(denoiser.cond_dim) != len(names) + 1:
            raise ConfigError(
                "denoiser.cond_dim",
                f"must be len(condition_names) + 1 = {len(names) + 1} (the last column is the guidance flag), "
                f"got {denoiser.cond_dim}",
            )
        schedule = schedule if schedule is not None else NoiseSchedule("cosine", int(denoiser.n_train_steps))
        if schedule.n_train_steps != denoiser.n_train_steps:
            raise ConfigError(
                "schedule.n_train_steps",
                f"{schedule.n_train_steps} differs from the denoiser's n_train_steps {denoiser.n_train_steps}",
            )
        check_prediction(prediction)
        if schedule.kind == "cosine" and prediction == "epsilon":
            raise ConfigError("prediction", "the cosine schedule needs prediction='v' (see ConditionalDiffusion)")
        if residual not in RESIDUAL_MODES:
            raise ConfigError("residual", f"must be one of {RESIDUAL_MODES}, got {residual!r}")
        unknown = sorted(set(log_conditions) - set(names))
        if unknown:
            raise ConfigError("log_conditions", f"{unknown} are not condition names {list(names)}")
        if not isinstance(guidance_dropout, (int, float)) or not 0.0 <= guidance_dropout < 1.0:
            raise ConfigError("guidance_dropout", f"must be in [0, 1), got {guidance_dropout!r}")
        self.denoiser = denoiser
        self.condition_names = names
        self.schedule = schedule
        self.prediction: Prediction = prediction
        self.log_conditions = tuple(c for c in names if c in set(log_conditions))
        self.guidance_dropout = float(guidance_dropout)
        self.representation = ShowerRepresentation(int(denoiser.n_depth), int(denoiser.n_radial), fraction_floor=fraction_floor)
        code_dim = self.representation.code_dim
        self.cond_standardizer = Standardizer(len(names))
        self.x_standardizer = Standardizer(code_dim)
        # "shash": the skewness and tail of the log total energy (leakage), Gaussian voxel fractions
        self.residual = ConditionalAffine(len(names), code_dim, residual, shaped_features=1)
        self.register_buffer("cond_low", torch.full((len(names),), -math.inf))
        self.register_buffer("cond_high", torch.full((len(names),), math.inf))
        self.register_buffer("code_low", torch.full((code_dim,), -math.inf))
        self.register_buffer("code_high", torch.full((code_dim,), math.inf))
        components = int(getattr(denoiser, "components", 0) or 0)
        self.latent = PrincipalComponents(self.representation.n_voxels, components) if components else None
        self._log_mask = [c in self.log_conditions for c in names]

    @classmethod
    def build(
        cls,
        kind: str,
        n_depth: int,
        n_radial: int,
        condition_names: Sequence[str],
        denoiser_options: dict[str, Any] | None = None,
        n_train_steps: int = 100,
        **options: Any,
    ) -> "ShowerDiffusion":
        """A model with a fresh ``kind`` (``"mlp"``, ``"conv"`` or ``"unet"``) denoiser; ``options`` go to ``__init__``."""
        config = {
            "n_depth": n_depth, "n_radial": n_radial, "cond_dim": len(tuple(condition_names)) + 1,
            "n_train_steps": n_train_steps, **(denoiser_options or {}),
        }
        return cls(build_denoiser(kind, config), condition_names, NoiseSchedule("cosine", n_train_steps), **options)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ShowerDiffusion":
        """An untrained model from a ``to_config`` dict (extra keys, e.g. of a saved document, are ignored)."""
        denoiser = build_denoiser(config["denoiser"]["type"], config["denoiser"]["config"])
        return cls(
            denoiser,
            config["condition_names"],
            NoiseSchedule.from_config(config["schedule"]),
            prediction=config["prediction"],
            residual=config["residual"],
            log_conditions=config["log_conditions"],
            guidance_dropout=config["guidance_dropout"],
            fraction_floor=config.get("representation", {}).get("fraction_floor", FRACTION_FLOOR),
        )

    # ------------------------------------------------------------------ properties
    @property
    def n_depth(self) -> int:
        return self.representation.n_depth

    @property
    def n_radial(self) -> int:
        return self.representation.n_radial

    @property
    def latent_dim(self) -> int:
        """Length of what the diffusion generates per shower: the code, or the energy and the kept components."""
        return 1 + (self.latent.n_components if self.latent is not None else self.representation.n_voxels)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.denoiser.parameters()).dtype

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.denoiser.parameters())

    def to_config(self) -> dict[str, Any]:
        """Hyper-parameters as a JSON-able dict (no weights)."""
        return {
            "denoiser": {"type": self.denoiser.config_name, "config": self.denoiser.to_config()},
            "condition_names": list(self.condition_names),
            "schedule": self.schedule.to_config(),
            "prediction": self.prediction,
            "residual": self.residual.mode,
            "log_conditions": list(self.log_conditions),
            "guidance_dropout": self.guidance_dropout,
            "representation": self.representation.to_config(),
        }

    def training_range(self) -> dict[str, list[float]]:
        """``{condition: [low, high]}`` seen in training (physical units)."""
        return {
            name: [float(lo), float(hi)]
            for name, lo, hi in zip(self.condition_names, self.cond_low.tolist(), self.cond_high.tolist())
        }

    def checksum(self) -> str:
        """``state_checksum`` of this model: what adapters record to refuse another base model."""
        return state_checksum(self)

    # ------------------------------------------------------------------ conditioning
    def check_conditions(self, conditions: Any, field: str = "conditions") -> torch.Tensor:
        """Physical conditions as a ``n x len(condition_names)`` tensor (a torch input keeps its graph)."""
        cond = as_tensor(conditions, field, len(self.condition_names))
        if any(self._log_mask):
            logged = cond[:, torch.tensor(self._log_mask)]
            if (logged <= 0).any():
                raise DataError(f"{field}: columns {list(self.log_conditions)} enter as logs and must be > 0")
        return cond

    def condition_features(self, cond: torch.Tensor) -> torch.Tensor:
        """Physical conditions -> log of the ``log_conditions`` columns (differentiable), model dtype."""
        cond = cond.to(self.device, self.dtype)
        if not any(self._log_mask):
            return cond
        mask = torch.tensor(self._log_mask, device=cond.device)
        return torch.where(mask, torch.log(torch.where(mask, cond, torch.ones_like(cond))), cond)

    def _denoiser_cond(self, cond_z: torch.Tensor) -> torch.Tensor:
        return torch.cat([cond_z, torch.ones_like(cond_z[:, :1])], dim=1)

    def extrapolation(
        self, conditions: Any, condition_range: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> list[str]:
        """One message per condition column with rows outside the training range (empty: none)."""
        cond = self.check_conditions(conditions).detach().to("cpu", torch.float64)
        low, high = condition_range if condition_range is not None else (self.cond_low, self.cond_high)
        low, high = low.to("cpu", torch.float64), high.to("cpu", torch.float64)
        slack = RANGE_TOLERANCE * torch.maximum(low.abs(), high.abs()).nan_to_num(posinf=0.0)
        messages = []
        for j, name in enumerate(self.condition_names):
            outside = (cond[:, j] < low[j] - slack[j]) | (cond[:, j] > high[j] + slack[j])
            count = int(outside.sum())
            if count:
                values = cond[outside, j]
                messages.append(
                    f"{name}: {count} of {cond.shape[0]} rows outside the training range "
                    f"[{float(low[j]):.6g}, {float(high[j]):.6g}] (values {float(values.min()):.6g} .. "
                    f"{float(values.max()):.6g}); the model extrapolates there"
                )
        return messages

    # ------------------------------------------------------------------ training
    def fit(
        self,
        conditions: Any,
        maps: Any,
        config: TrainConfig | None = None,
        init_from: "ShowerDiffusion | None" = None,
        on_epoch: "Callable[[int, int], None] | None" = None,
    ) -> TrainResult:
        """Train on physical ``conditions`` (``n x n_conditions``) and ``maps`` (``n x n_depth x n_radial``, GeV).

        Without ``init_from`` the weights are re-drawn from ``config.seed`` and the normalization
        and training range are fitted on these data; with it, training starts from its weights
        and keeps its normalization and range (fine-tuning). Early stopping and EMA as in
        ``TrainConfig``. Afterwards the weights are frozen (``requires_grad=False``).
        """
        config = config if config is not None else TrainConfig()
        if not isinstance(config, TrainConfig):
            raise ConfigError("config", f"expected a TrainConfig, got {type(config).__name__}")
        cond, codes = self._training_codes(conditions, maps)
        device = config.resolve_device()
        if init_from is None:
            self.to("cpu")
            self.denoiser.reset_parameters(torch.Generator().manual_seed(config.seed))
            self._fit_normalization(cond, codes, config.seed)
        elif init_from is not self:
            if not isinstance(init_from, ShowerDiffusion) or init_from.to_config() != self.to_config():
                raise ConfigError("init_from", "warm start needs a ShowerDiffusion of the same configuration")
            self.load_state_dict(init_from.state_dict())
        self.to(device)
        cond_z, x_z = self.normalize(cond, codes)
        return self.train_network(self.denoiser, cond_z, x_z, config, on_epoch)

    def train_network(
        self, network: nn.Module, cond_z: torch.Tensor, x_z: torch.Tensor, config: TrainConfig,
        on_epoch: "Callable[[int, int], None] | None" = None,
    ) -> TrainResult:
        """Run the core training loop on already normalized data (with guidance dropout when set)."""
        own = network is self.denoiser
        if own:
            network.requires_grad_(True)
        wrapped = _ConditionDropout(network, self.guidance_dropout, config.seed + 7)
        try:
            return train_denoiser(wrapped, self.schedule, self._denoiser_cond(cond_z), x_z, config, self.prediction, on_epoch)
        finally:
            network.eval()
            self.eval()
            if own:
                network.requires_grad_(False)

    def code_range_of(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clipping range of codes: their min and max widened by ``CODE_MARGIN`` of the spread on each side."""
        low, high = codes.min(dim=0).values, codes.max(dim=0).values
        spread = high - low
        return (low - CODE_MARGIN * spread).to(self.code_low), (high + CODE_MARGIN * spread).to(self.code_high)

    def _training_codes(self, conditions: Any, maps: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked physical conditions (float64, cpu) and the codes of ``maps``, one row per shower."""
        cond = self.check_conditions(conditions).detach().to("cpu", torch.float64)
        maps_t = check_maps(maps, self.n_depth, self.n_radial)
        if maps_t.shape[0] != cond.shape[0]:
            raise DataError(f"maps: {maps_t.shape[0]} showers but {cond.shape[0]} condition rows")
        if cond.shape[0] < 2:
            raise DataError(f"need at least 2 training showers, got {cond.shape[0]}")
        return cond, self.representation.encode(maps_t)

    def fit_normalization(self, conditions: Any, maps: Any, seed: int = 0, steps: int | None = None) -> None:
        """Fit only what ``fit`` fits before training: training range, standardizations and the
        conditional residual (``steps`` Adam steps of its likelihood fit, default
        ``residual_fit_steps``); for studying the normalization without training a denoiser."""
        cond, codes = self._training_codes(conditions, maps)
        self.to("cpu")
        self._fit_normalization(cond, codes, seed, steps)

    @torch.no_grad()
    def _fit_normalization(self, cond: torch.Tensor, codes: torch.Tensor, seed: int, steps: int | None = None) -> None:
        self.cond_low.copy_(cond.min(dim=0).values.to(self.cond_low))
        self.cond_high.copy_(cond.max(dim=0).values.to(self.cond_high))
        low, high = self.code_range_of(codes)
        self.code_low.copy_(low)
        self.code_high.copy_(high)
        cond_z, x_z = self.refit_normalization(cond, codes, seed, steps)
        if self.latent is not None:
            self.latent.fit(self.residual(x_z, cond_z))

    @torch.no_grad()
    def refit_normalization(
        self, cond: torch.Tensor, codes: torch.Tensor, seed: int, steps: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fit the standardizations of the physical conditions ``cond`` and the raw ``codes`` and the
        conditional residual (``steps`` Adam steps, default ``residual_fit_steps``); training range and
        principal components stay as they are (what an adapted model refits on a new geometry).
        Returns the standardized ``(cond_z, x_z)`` the fit used."""
        dtype = self.cond_standardizer.mean.dtype
        features = self.condition_features(cond.to(self.device)).to("cpu", dtype)
        cond_z = self.cond_standardizer.fit(features)(features)
        x_z = self.x_standardizer.fit(codes.to(dtype))(codes.to(dtype))
        self.residual.fit(cond_z, x_z, seed, steps if steps is not None else residual_fit_steps(codes.shape[0]))
        return cond_z, x_z

    def residuals(self, cond: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical conditions and raw codes -> ``(cond_z, residual of every code entry)`` (before any components)."""
        with torch.no_grad():
            cond_z = self.cond_standardizer(self.condition_features(cond))
            return cond_z, self.residual(self.x_standardizer(codes.to(self.device, self.dtype)), cond_z)

    def normalize(self, cond: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical conditions and raw codes -> ``(cond_z, z)`` the denoiser is trained on (model dtype/device)."""
        cond_z, z = self.residuals(cond, codes)
        if self.latent is not None:
            with torch.no_grad():
                z = self.latent(z)
        return cond_z, z

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        conditions: Any,
        n_steps: int = DEFAULT_SAMPLE_STEPS,
        eta: float = 0.0,
        guidance: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        network: nn.Module | None = None,
        chunk_rows: int | None = 4096,
        code_range: tuple[torch.Tensor, torch.Tensor] | None = None,
        condition_range: tuple[torch.Tensor, torch.Tensor] | None = None,
        method: str = "ddim",
        cell_noise: bool | None = None,
    ) -> torch.Tensor:
        """One map per row of ``conditions`` (physical units): ``n x n_depth x n_radial`` GeV, torch.

        ``method="ddim"``: DDIM (Song et al. 2021) over ``n_steps`` steps with ``eta``; ``"dpm"``:
        DPM-Solver++(2M) (deterministic, second order: keeps widths better at few steps; ``eta`` must be 0); ``guidance`` = w of
        classifier-free guidance (needs a model trained with ``guidance_dropout > 0``). With
        ``eta = 0`` and given ``noise`` (``n x latent_dim``, standard normal) the maps are a
        deterministic function of ``conditions``, differentiable when those are a tensor with
        ``requires_grad``. Conditions outside the training range issue an ``ExtrapolationWarning``.
        ``network`` replaces the denoiser (an adapted copy, see ``adaptation.py``) and
        ``code_range`` the (low, high) clipping range of the codes (``CODE_MARGIN``),
        ``condition_range`` the (low, high) training range of the conditions. ``cell_noise`` (a model
        on principal components only): put back the voxel fluctuations outside the components
        (``latent.cell_fluctuations``, drawn from ``generator``); default on, except with given
        ``noise``, where the maps stay a deterministic function of the conditions (each voxel at its
        mean over those fluctuations).
        """
        codes = self.sample_codes(
            conditions, n_steps, eta, guidance, noise, generator, network, chunk_rows, code_range, condition_range, method,
        )
        fluctuate = noise is None if cell_noise is None else cell_noise
        if self.latent is None or not fluctuate:
            return self.representation.decode(codes)
        cond_z = self.cond_standardizer(self.condition_features(self.check_conditions(conditions)))
        code_std = self.latent.tail_std * self.residual.scale(cond_z)[:, 1:] * self.x_standardizer.std[1:]
        floor = self.representation.fraction_floor
        return self.representation.decode(
            codes, lambda fractions: cell_fluctuations(fractions, code_std.to(fractions), floor, generator)
        )

    def sample_codes(
        self,
        conditions: Any,
        n_steps: int = DEFAULT_SAMPLE_STEPS,
        eta: float = 0.0,
        guidance: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        network: nn.Module | None = None,
        chunk_rows: int | None = 4096,
        code_range: tuple[torch.Tensor, torch.Tensor] | None = None,
        condition_range: tuple[torch.Tensor, torch.Tensor] | None = None,
        method: str = "ddim",
    ) -> torch.Tensor:
        """The codes of ``sample`` (``n x code_dim``, clipped to the code range) before decoding:
        what the diffusion generates, to compare with the encoded simulation. Arguments as ``sample``.
        """
        cond = self.check_conditions(conditions)
        messages = self.extrapolation(cond, condition_range)
        if messages:
            warnings.warn("; ".join(messages), ExtrapolationWarning, stacklevel=2)
        if not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
            raise ConfigError("guidance", f"must be a number >= 0, got {guidance!r}")
        if guidance > 0 and self.guidance_dropout == 0.0:
            raise ConfigError("guidance", "the model was trained without guidance_dropout; guidance needs it > 0")
        cond_z = self.cond_standardizer(self.condition_features(cond))
        if noise is not None:
            noise = as_tensor(noise, "noise", self.latent_dim, self.dtype)
            if noise.shape[0] != cond.shape[0]:
                raise DataError(f"noise: expected {cond.shape[0]} rows (one per condition), got {noise.shape[0]}")
            noise = noise.to(self.device, self.dtype)
        net = network if network is not None else self.denoiser
        if method not in ("ddim", "dpm"):
            raise ConfigError("method", f"must be ddim or dpm, got {method!r}")
        if method == "dpm":
            if eta != 0.0:
                raise ConfigError("eta", f"DPM-Solver++ is deterministic: eta must be 0, got {eta!r}")
            z = dpm_solver_sample(
                guided_denoiser(net, float(guidance)), self.schedule, self._denoiser_cond(cond_z), n_steps, noise,
                generator, prediction=self.prediction, event_shape=(self.latent_dim,), chunk_rows=chunk_rows,
            )
        else:
            z = ddim_sample(
                guided_denoiser(net, float(guidance)), self.schedule, self._denoiser_cond(cond_z), n_steps, eta, noise,
                generator, prediction=self.prediction, event_shape=(self.latent_dim,),
                chunk_rows=chunk_rows,
            )
        if self.latent is not None:
            z = self.latent.inverse(z)
        codes = self.x_standardizer.inverse(self.residual.inverse(z, cond_z))
        low, high = code_range if code_range is not None else (self.code_low, self.code_high)
        return torch.minimum(torch.maximum(codes, low.to(codes)), high.to(codes))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``shower_model.safetensors`` then ``shower_model.json`` into ``directory`` (atomically)."""
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            **self.to_config(),
            "dtype": str(self.dtype).removeprefix("torch."),
            "training_range": self.training_range(),
            "n_parameters": self.n_parameters,
            "model_checksum": self.checksum(),
        }
        return write_weights_document(
            directory, self.state_dict(), document, weights_file=WEIGHTS_FILE, document_file=CONFIG_FILE,
            metadata={"format": FORMAT_NAME, "version": str(FORMAT_VERSION)},
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> "ShowerDiffusion":
        """Rebuild a model written by ``save``; ``DataError`` names the file and field at fault."""

        folder = Path(directory)
        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        document = read_json_document(config_path, FORMAT_NAME)
        if document.get("version") != FORMAT_VERSION:
            raise DataError(f"{config_path}: version {document.get('version')!r} is not {FORMAT_VERSION}")
        try:
            model = cls.from_config(document)
            dtype = getattr(torch, str(document["dtype"]))
        except KeyError as exc:
            raise DataError(f"{config_path}: missing field {exc}") from None
        except (ConfigError, TypeError, AttributeError) as exc:
            raise DataError(f"{config_path}: invalid settings ({exc})") from None
        state = read_weights(weights_path, str(document.get("weights_sha256")), CONFIG_FILE)
        model.to(dtype)
        expected = model.state_dict()
        if set(expected) != set(state) or any(tuple(state[k].shape) != tuple(v.shape) for k, v in expected.items()):
            raise DataError(f"{weights_path}: tensors do not match the configuration in {CONFIG_FILE}")
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
        model.requires_grad_(False)
        return model.to(map_location).eval()
