"""Adapting a pre-trained ``ShowerDiffusion`` to a new geometry with a small data set.

Four methods, compared in ``docs/shower.md`` on the same small set:

- ``"lora"``: low-rank adapters (Hu et al. 2021) on every ``nn.Linear`` and ``nn.Conv2d`` of the
  denoiser through the ``peft`` library; layers that cannot take LoRA but have weights
  (``LayerNorm``, ``GroupNorm``) are trained in full as ``modules_to_save``;
- ``"bitfit"``: only the biases are trained (Ben Zaken et al. 2022);
- ``"full"``: every weight of the denoiser is fine-tuned from the base model;
- ``"scratch"``: a new model of the same architecture trained on the small set alone (its own
  normalization and training range).

The first three never modify the base model: they train a copy of its denoiser (and, by
default, refit the normalization on the new data, see ``adapt``). Their weights are saved separately from
the base model (``adapter.safetensors`` + ``adapter.json``) with the base model's
``state_checksum``; loading them onto another base model is a ``DataError``.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from detopt.atomic import read_json_document, read_weights, write_weights_document
from detopt.errors import ConfigError, DataError
from detopt.surrogate.shower.denoiser import restandardize_conditions
from detopt.surrogate.shower.model import ShowerDiffusion
from detopt.surrogate.shower.representation import check_maps
from detopt.surrogate.training import TrainConfig, TrainResult

AdaptMethod = Literal["lora", "bitfit", "full", "scratch"]
ADAPT_METHODS: tuple[str, ...] = ("lora", "bitfit", "full", "scratch")

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter.json"
ADAPTER_FORMAT = "detopt.surrogate.shower.Adapter"
ADAPTER_VERSION = 1
#: Names of the code clipping range and of the conditions' training range (low, high each) in
#: the adapter's safetensors file, beside the network weights.
RANGE_KEYS: tuple[str, ...] = ("__code_low__", "__code_high__", "__condition_low__", "__condition_high__")
#: Prefix of the refitted normalization's tensors in the adapter's safetensors file.
NORM_PREFIX = "__normalization__."

#: LoRA ranks accepted (the issue asks for 4-16; 1-64 is allowed for studies).
LORA_RANK_RANGE: tuple[int, int] = (1, 64)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters: rank r and scale alpha (the update is (alpha / r) B A, Hu et al. 2021 eq. 3)."""

    rank: int = 8
    alpha: float = 16.0

    def __post_init__(self) -> None:
        lo, hi = LORA_RANK_RANGE
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or not lo <= self.rank <= hi:
            raise ConfigError("lora.rank", f"must be an integer in [{lo}, {hi}], got {self.rank!r}")
        if not isinstance(self.alpha, (int, float)) or not 0 < self.alpha <= 1e4:
            raise ConfigError("lora.alpha", f"must be a number in (0, 1e4], got {self.alpha!r}")


def lora_targets(denoiser: nn.Module) -> tuple[list[str], list[str]]:
    """(names of the Linear/Conv2d layers that take LoRA, names of the weighted layers that cannot)."""
    targets, to_save = [], []
    for name, module in denoiser.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            targets.append(name)
        elif name and not list(module.children()) and any(True for _ in module.parameters(recurse=False)):
            to_save.append(name)
    return targets, to_save


def _lora_config(denoiser: nn.Module, settings: LoraSettings) -> Any:
    from peft import LoraConfig

    targets, to_save = lora_targets(denoiser)
    # Exact-name regexes, so that e.g. "fc1.1" never matches "fc1.11".
    pattern = "^(" + "|".join(t.replace(".", r"\.") for t in targets) + ")$"
    return LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0, bias="none",
        target_modules=pattern, modules_to_save=to_save or None,
    )


def _wrap_lora(denoiser: nn.Module, settings: LoraSettings) -> nn.Module:
    """``denoiser`` (changed in place: pass a copy) with LoRA adapters on its Linear/Conv2d layers."""
    from peft import get_peft_model

    return get_peft_model(denoiser, _lora_config(denoiser, settings))


def _bias_names(network: nn.Module) -> list[str]:
    return [name for name, _ in network.named_parameters() if name.endswith("bias")]


@dataclass
class AdaptedShower:
    """A base ``ShowerDiffusion`` with an adapted copy of its denoiser (or, for scratch, a new model).

    ``model`` (a copy of the base, never the base itself) supplies normalization and training
    range; ``network`` is the denoiser used to sample.
    """

    model: ShowerDiffusion
    network: nn.Module
    method: AdaptMethod
    base_checksum: str | None
    lora: LoraSettings | None = None
    result: TrainResult | None = None
    code_range: tuple[torch.Tensor, torch.Tensor] | None = None
    condition_range: tuple[torch.Tensor, torch.Tensor] | None = None
    refit_normalization: bool = False

    def sample(self, conditions: Any, **options: Any) -> torch.Tensor:
        """As ``ShowerDiffusion.sample``, with the adapted network, code range and training range. A LoRA
        adapter samples through a copy with its low-rank updates merged into the weights (same maps, no extra
        matrix products per step)."""
        return self.model.sample(
            conditions, network=self.sampling_network(), code_range=self.code_range, condition_range=self.condition_range,
            **options,
        )

    def sampling_network(self) -> nn.Module:
        """The network sampling uses: for LoRA the merged copy (made once, refreshed if the adapter changes)."""
        if self.method != "lora" or not hasattr(self.network, "merge_and_unload"):
            return self.network
        key = tuple(float(p.detach().float().sum()) for p in self.network.parameters() if p.requires_grad) or (0.0,)
        cached = self.__dict__.get("_merged")
        if cached is None or cached[0] != key:
            merged = copy.deepcopy(self.network).merge_and_unload()
            merged.requires_grad_(False)
            merged.eval()
            self.__dict__["_merged"] = (key, merged)
        return self.__dict__["_merged"][1]

    def extrapolation(self, conditions: Any) -> list[str]:
        """Messages for conditions outside the range of the base's and the adaptation's data."""
        return self.model.extrapolation(conditions, self.condition_range)

    @property
    def trainable_parameters(self) -> int:
        """Parameters the adaptation trained (what the adapter file stores)."""
        return sum(t.numel() for t in self._adapter_state().values())

    def _adapter_state(self) -> dict[str, torch.Tensor]:
        if self.method == "lora":
            from peft import get_peft_model_state_dict

            return dict(get_peft_model_state_dict(self.network))
        if self.method == "bitfit":
            state = self.network.state_dict()
            return {k: state[k] for k in _bias_names(self.network)}
        return dict(self.network.state_dict())

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``adapter.safetensors`` + ``adapter.json`` (scratch: also the whole model, it has no base)."""
        folder = Path(directory)
        if self.method == "scratch":
            self.model.save(folder)
        state = dict(self._adapter_state())
        if self.refit_normalization and self.method != "scratch":
            state.update(_normalization_state(self.model))
        for keys, pair in ((RANGE_KEYS[:2], self.code_range), (RANGE_KEYS[2:], self.condition_range)):
            if pair is not None:
                state[keys[0]], state[keys[1]] = pair
        document = {
            "format": ADAPTER_FORMAT,
            "version": ADAPTER_VERSION,
            "method": self.method,
            "lora": None if self.lora is None else {"rank": self.lora.rank, "alpha": self.lora.alpha},
            "base_checksum": self.base_checksum,
            "refit_normalization": self.refit_normalization,
            "trainable_parameters": self.trainable_parameters,
            "training": None if self.result is None else self.result.to_dict(),
        }
        return write_weights_document(
            folder, state, document, weights_file=ADAPTER_WEIGHTS, document_file=ADAPTER_CONFIG,
            metadata={"format": ADAPTER_FORMAT},
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str], base: ShowerDiffusion | None = None) -> "AdaptedShower":
        """Read an adapter onto ``base`` (not needed for scratch); a different base is a ``DataError``."""

        folder = Path(directory)
        config_path = folder / ADAPTER_CONFIG
        document = read_json_document(config_path, ADAPTER_FORMAT)
        method = document.get("method")
        if method not in ADAPT_METHODS:
            raise DataError(f"{config_path}: field 'method' must be one of {ADAPT_METHODS}, got {method!r}")
        state = read_weights(folder / ADAPTER_WEIGHTS, str(document.get("weights_sha256")), ADAPTER_CONFIG)
        ranges = [state.pop(k) if k in state else None for k in RANGE_KEYS]
        norm = {k.removeprefix(NORM_PREFIX): state.pop(k) for k in list(state) if k.startswith(NORM_PREFIX)}
        code_range = (ranges[0], ranges[1]) if ranges[0] is not None and ranges[1] is not None else None
        condition_range = (ranges[2], ranges[3]) if ranges[2] is not None and ranges[3] is not None else None
        if method == "scratch":
            model = ShowerDiffusion.load(folder)
            return cls(model, model.denoiser, "scratch", None)
        if base is None:
            raise ConfigError("base", f"a {method} adapter needs the base model it was trained on")
        expected = document.get("base_checksum")
        actual = base.checksum()
        if expected != actual:
            raise DataError(
                f"{config_path}: these adapter weights belong to base model {str(expected)[:16]}..., "
                f"not to the given base model {actual[:16]}... (field 'base_checksum'); load the base they were "
                "trained on"
            )
        model = _copy_model(base)
        if norm:
            for name in ("cond_standardizer", "x_standardizer", "residual"):
                part = {k.removeprefix(name + "."): v for k, v in norm.items() if k.startswith(name + ".")}
                if not part and name == "cond_standardizer":
                    continue  # adapters written before the conditions' standardization was refitted
                try:
                    getattr(model, name).load_state_dict(part)
                except RuntimeError as exc:
                    raise DataError(f"{folder / ADAPTER_WEIGHTS}: normalization tensors do not fit ({exc})") from None
        start = _restandardized_denoiser(base, model)
        lora = None
        if method == "lora":
            from peft import set_peft_model_state_dict

            spec = document.get("lora") or {}
            lora = LoraSettings(int(spec.get("rank", 8)), float(spec.get("alpha", 16.0)))
            network = _wrap_lora(start, lora)
            result = set_peft_model_state_dict(network, state)
            unexpected = list(getattr(result, "unexpected_keys", []) or [])
            if unexpected:
                raise DataError(f"{folder / ADAPTER_WEIGHTS}: tensors {unexpected[:5]} do not fit the base model")
        else:
            network = start
            own = network.state_dict()
            wanted = set(_bias_names(network)) if method == "bitfit" else set(own)
            if set(state) != wanted or any(tuple(state[k].shape) != tuple(own[k].shape) for k in state):
                raise DataError(f"{folder / ADAPTER_WEIGHTS}: tensors do not match the base model's denoiser")
            network.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=(method == "full"))
        network.requires_grad_(False)
        return cls(model, network.eval(), method, actual, lora, None, code_range, condition_range, bool(norm))


def adapt(
    base: ShowerDiffusion,
    conditions: Any,
    maps: Any,
    method: AdaptMethod,
    config: TrainConfig | None = None,
    lora: LoraSettings | None = None,
    refit_normalization: bool = True,
) -> AdaptedShower:
    """Adapt ``base`` to the showers ``maps`` (GeV) at physical ``conditions`` by ``method``.

    ``base`` itself is never modified (its weights stay bit-identical): LoRA, BitFit and full
    fine-tuning train a copy of its denoiser; ``"scratch"`` trains a new model of the same
    configuration. With ``refit_normalization`` (default) the normalization (standardization of
    the conditions and of the codes, conditional residual) is refitted on the new data and stored
    with the adapter, and the change of the conditions' standardization is folded into the
    adapted copy of the denoiser (``restandardize_conditions``), so that it keeps seeing the inputs
    it was trained on: a new geometry's narrow ranges, standardized with the base's wide ones, would
    leave the residual fit less resolution. Without it the base's normalization is kept: a new geometry whose
    energy scale lies far outside the base's (a sampling calorimeter sees ~7% of the energy) then
    asks the network for residuals of tens of standard deviations. ``config.seed`` seeds every draw.
    """
    if method not in ADAPT_METHODS:
        raise ConfigError("method", f"must be one of {ADAPT_METHODS}, got {method!r}")
    config = config if config is not None else TrainConfig()
    if method == "scratch":
        model = ShowerDiffusion.from_config(base.to_config())
        result = model.fit(conditions, maps, config)
        return AdaptedShower(model, model.denoiser, "scratch", None, None, result)
    cond = base.check_conditions(conditions).detach().to("cpu", torch.float64)
    maps_t = check_maps(maps, base.n_depth, base.n_radial)
    if maps_t.shape[0] != cond.shape[0] or cond.shape[0] < 2:
        raise DataError(f"need >= 2 showers with one condition row each; got {maps_t.shape[0]} maps, {cond.shape[0]} rows")
    checksum = base.checksum()
    device = config.resolve_device()
    model = _copy_model(base)
    codes = model.representation.encode(maps_t)
    if refit_normalization:
        model.refit_normalization(cond, codes, config.seed)
    start = _restandardized_denoiser(base, model)
    if method == "lora":
        lora = lora if lora is not None else LoraSettings()
        network = _wrap_lora(start, lora)
    else:
        lora = None
        network = start
        network.requires_grad_(False)
        if method == "bitfit":
            for name, p in network.named_parameters():
                p.requires_grad_(name.endswith("bias"))
        else:
            network.requires_grad_(True)
    base_device = base.device
    model.to(device)
    network.to(device)
    cond_z, x_z = model.normalize(cond, codes)
    result = model.train_network(network, cond_z, x_z, config)
    model.to(base_device)
    network.requires_grad_(False)
    # Clip generated codes to the union of the base's range and that of the new geometry's showers.
    low, high = base.code_range_of(codes)
    code_range = (torch.minimum(low, base.code_low), torch.maximum(high, base.code_high))
    condition_range = (
        torch.minimum(cond.min(dim=0).values.to(base.cond_low), base.cond_low),
        torch.maximum(cond.max(dim=0).values.to(base.cond_high), base.cond_high),
    )
    if base.checksum() != checksum:  # pragma: no cover - a bug, never bad input
        raise RuntimeError("adaptation changed the base model's weights")
    return AdaptedShower(
        model, network.to(base_device).eval(), method, checksum, lora, result, code_range, condition_range,
        refit_normalization,
    )


def _copy_model(base: ShowerDiffusion) -> ShowerDiffusion:
    """An independent copy of ``base`` (weights, normalization, ranges), frozen, in eval mode."""
    model = ShowerDiffusion.from_config(base.to_config()).to(base.dtype)
    model.load_state_dict(base.state_dict())
    model.requires_grad_(False)
    return model.to(base.device).eval()


def _restandardized_denoiser(base: ShowerDiffusion, model: ShowerDiffusion) -> nn.Module:
    """A copy of the base's denoiser taking conditions standardized as ``model`` does (an exact copy
    when the standardization is the base's)."""
    network = copy.deepcopy(base.denoiser)
    restandardize_conditions(network, base.cond_standardizer, model.cond_standardizer)
    return network


def _normalization_state(model: ShowerDiffusion) -> dict[str, torch.Tensor]:
    return {
        **{f"{NORM_PREFIX}cond_standardizer.{k}": v for k, v in model.cond_standardizer.state_dict().items()},
        **{f"{NORM_PREFIX}x_standardizer.{k}": v for k, v in model.x_standardizer.state_dict().items()},
        **{f"{NORM_PREFIX}residual.{k}": v for k, v in model.residual.state_dict().items()},
    }
