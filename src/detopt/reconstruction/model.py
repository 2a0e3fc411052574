"""Training, prediction, warm start and persistence of the reconstruction network.

``Reconstruction`` wraps a ``ReconstructionNet`` with what the SRSO loop needs each
iteration: fit on the events of all designs together (Adam, validation split, early
stopping), warm-start from the previous iteration's model, predict, evaluate the
AIDO eq. 10 loss per event and per design, and save / load as safetensors + JSON.

Shapes (``n`` = number of events):

- ``design``: ``n x n_design`` (one design vector per event), or ``n_design`` for one
  design shared by all events;
- ``features``: ``n x n_features``, deposited energy per active layer (GeV);
- ``context``: ``n x n_context`` (e.g. a particle one-hot), or ``None`` when ``n_context == 0``;
- ``e_true``: ``n``, true energy (GeV, >= 0).

Inputs may be numpy arrays or torch tensors; ``predict`` answers in the type of
``features`` (numpy in, numpy out; a tensor in, a tensor on the same device out).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detopt.atomic import read_json_document, read_weights, write_bytes_atomic, write_text_atomic
from detopt.errors import ConfigError, DataError, DetoptError
from detopt.reconstruction.loss import BUILTIN_LOSSES, energy_resolution_loss
from detopt.reconstruction.network import PAPER_MAIN_HIDDEN, PAPER_PREPROCESS_HIDDEN, ReconstructionNet

ArrayLike = np.ndarray | torch.Tensor

#: Name and version of the on-disk format written by ``Reconstruction.save``.
FORMAT = "detopt.reconstruction/1"
CONFIG_FILE = "reconstruction.json"
WEIGHTS_FILE = "weights.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
#: Per-parameter Adam state kept for warm starts (the "step" count and both moments).
_ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")
#: Events per forward pass in ``predict`` (bounds memory for large event sets).
PREDICT_CHUNK = 65536


class TrainingError(DetoptError, RuntimeError):
    """Training diverged (the loss became NaN or inf); the model keeps its previous weights."""


class NotFittedError(DetoptError, RuntimeError):
    """The reconstruction was used before ``fit`` or ``load``."""


@dataclass(frozen=True)
class ReconstructionConfig:
    """How ``Reconstruction.fit`` trains (Adam on AIDO eq. 10).

    ``validation_fraction`` of the events (drawn at random with ``seed``) is held out for
    early stopping: training stops after ``patience`` epochs without the validation loss
    falling below ``(1 - min_rel_improvement)`` times its best value, and the weights of
    the best epoch are kept. ``validation_fraction = 0`` trains for ``epochs`` epochs and
    keeps the last weights. ``patience = None`` disables early stopping (the best epoch is
    still kept). ``device`` is a torch device string ("cpu", "cuda", "cuda:1").
    ``num_threads`` is the number of CPU threads torch uses during ``fit`` (restored
    afterwards; ``None`` keeps the current setting): networks this small train fastest on
    one thread, and several threads on a busy machine can be many times slower.
    """

    lr: float = 1e-3
    epochs: int = 200
    batch_size: int = 256
    validation_fraction: float = 0.2
    patience: int | None = 20
    min_rel_improvement: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        def _int(name: str, value: Any, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(name, f"must be an integer >= {low}, got {value!r}")

        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError("lr", f"must be a finite number > 0, got {self.lr!r}")
        _int("epochs", self.epochs, 1)
        _int("batch_size", self.batch_size, 1)
        _int("seed", self.seed, 0)
        if self.patience is not None:
            _int("patience", self.patience, 1)
        if self.num_threads is not None:
            _int("num_threads", self.num_threads, 1)
        vf = self.validation_fraction
        if not (isinstance(vf, (int, float)) and 0.0 <= vf < 1.0):
            raise ConfigError("validation_fraction", f"must be in [0, 1), got {vf!r}")
        mri = self.min_rel_improvement
        if not (isinstance(mri, (int, float)) and 0.0 <= mri < 1.0):
            raise ConfigError("min_rel_improvement", f"must be in [0, 1), got {mri!r}")
        wd = self.weight_decay
        if not (isinstance(wd, (int, float)) and math.isfinite(wd) and wd >= 0):
            raise ConfigError("weight_decay", f"must be a finite number >= 0, got {wd!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError("device", f"not a torch device string ('cpu', 'cuda', 'cuda:0'): {self.device!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReconstructionConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown reconstruction setting; allowed: {sorted(known)}")
        return cls(**data)


@dataclass
class FitResult:
    """What one ``fit`` did. Losses are AIDO eq. 10 means (GeV).

    ``initial_*_loss`` is the loss before the first update (for a warm start: the previous
    model on the new events); ``train_loss[k]`` the mean over the mini-batches of epoch
    ``k``; ``val_loss[k]`` the validation loss after epoch ``k`` (empty without a
    validation split). ``best_epoch`` is the index of the kept weights (-1: the initial ones).
    """

    initial_train_loss: float
    initial_val_loss: float | None
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float | None = None
    stopped_early: bool = False
    warm_start: bool = False
    n_train: int = 0
    n_val: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _to_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name}: cannot be read as an array of numbers ({exc})") from exc
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise DataError(f"{name}: expected real numbers, got dtype {t.dtype}")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise DataError(f"{name}: contains {bad} NaN or inf value(s)")
    return t


class Reconstruction:
    """The AIDO reconstruction (Tables 2-3, loss eq. 10) with training, warm start and persistence.

    Construct with the sizes of the inputs, then ``fit``; or ``load`` a saved one. ``fit``
    always starts either from fresh weights (seeded by ``config.seed``) or, with
    ``init_from``, from a copy of a previous ``Reconstruction``'s weights, standardization
    *and* Adam moments, so the first epoch continues at the previous model's loss (a fresh
    Adam state would take full-size first steps and kick a converged model several times
    above its loss). ``fit`` is all-or-nothing: if it raises, the object keeps its state.
    """

    def __init__(
        self,
        n_design: int,
        n_features: int,
        n_context: int = 0,
        preprocess_hidden: Sequence[int] = PAPER_PREPROCESS_HIDDEN,
        main_hidden: Sequence[int] = PAPER_MAIN_HIDDEN,
    ) -> None:
        self.net = ReconstructionNet(n_design, n_features, n_context, preprocess_hidden, main_hidden)
        self.fitted = False
        self.history: FitResult | None = None
        self.config: ReconstructionConfig | None = None
        # Adam's per-parameter state after the last fit, keyed by parameter name (CPU tensors).
        self.optimizer_state: dict[str, dict[str, torch.Tensor]] | None = None

    # ----------------------------------------------------------------- properties
    @property
    def n_design(self) -> int:
        return self.net.n_design

    @property
    def n_features(self) -> int:
        return self.net.n_features

    @property
    def n_context(self) -> int:
        return self.net.n_context

    @property
    def device(self) -> torch.device:
        return self.net.target_scaler.mean.device

    def hyperparameters(self) -> dict[str, Any]:
        return self.net.hyperparameters()

    # ----------------------------------------------------------------- input checks
    def _prepare(
        self,
        design: Any,
        features: Any,
        context: Any,
        e_true: Any | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        f = _to_tensor(features, "features")
        if f.ndim != 2 or f.shape[1] != self.n_features:
            raise DataError(
                f"features: expected shape (n_events, {self.n_features}) (n_events x n_features), got {tuple(f.shape)}"
            )
        n = f.shape[0]
        if n == 0:
            raise DataError("features: no events (n_events = 0)")
        d = _to_tensor(design, "design")
        if d.ndim == 1 and d.shape[0] == self.n_design:
            d = d.unsqueeze(0).expand(n, -1)
        if d.ndim != 2 or d.shape != (n, self.n_design):
            raise DataError(
                f"design: expected shape ({n}, {self.n_design}) (n_events x n_design) or ({self.n_design},) "
                f"for one design shared by all events, got {tuple(d.shape)}"
            )
        c: torch.Tensor | None
        if context is None:
            if self.n_context:
                raise DataError(f"context: this reconstruction takes {self.n_context} context column(s), got None")
            c = None
        else:
            c = _to_tensor(context, "context")
            if c.ndim != 2 or c.shape != (n, self.n_context):
                raise DataError(
                    f"context: expected shape ({n}, {self.n_context}) (n_events x n_context), got {tuple(c.shape)}"
                )
        e: torch.Tensor | None = None
        if e_true is not None:
            e = _to_tensor(e_true, "e_true")
            if e.ndim != 1 or e.shape[0] != n:
                raise DataError(f"e_true: expected shape ({n},) (n_events), got {tuple(e.shape)}")
            if (e < 0).any():
                raise DataError(f"e_true: true energies must be >= 0 GeV, got minimum {float(e.min()):.4g}")
        return d, f, c, e

    # ----------------------------------------------------------------- training
    def fit(
        self,
        design: ArrayLike,
        features: ArrayLike,
        context: ArrayLike | None,
        e_true: ArrayLike,
        config: ReconstructionConfig | None = None,
        init_from: "Reconstruction | None" = None,
        loss_fn: "Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None" = None,
    ) -> FitResult:
        """Train on AIDO eq. 10 (or the per-event ``loss_fn(T_reco, T_true)``) with Adam; returns (and stores in ``history``) what happened.

        Without ``init_from`` the standardizers are fitted on the training split and the
        weights drawn fresh from ``config.seed``; with it, weights, standardizers and Adam
        moments are copied from ``init_from`` (which must have the same sizes), so the
        design and feature scales of the previous iteration are kept (lr and the other
        settings come from ``config``). Raises ``DataError`` on bad input, ``ConfigError``
        on a mismatched ``init_from`` and ``TrainingError`` if the loss turns NaN/inf.
        """
        config = config or ReconstructionConfig()
        if not isinstance(config, ReconstructionConfig):
            raise ConfigError("config", f"must be a ReconstructionConfig, got {type(config).__name__}")
        threads = torch.get_num_threads()
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        try:
            return self._fit(design, features, context, e_true, config, init_from, loss_fn or BUILTIN_LOSSES["energy_resolution"])
        finally:
            torch.set_num_threads(threads)

    def _fit(
        self,
        design: ArrayLike,
        features: ArrayLike,
        context: ArrayLike | None,
        e_true: ArrayLike,
        config: ReconstructionConfig,
        init_from: "Reconstruction | None",
        loss_fn: "Callable[[torch.Tensor, torch.Tensor], torch.Tensor]",
    ) -> FitResult:
        d, f, c, e = self._prepare(design, features, context, e_true)
        assert e is not None  # e_true was given
        n = f.shape[0]
        n_val = int(round(config.validation_fraction * n)) if config.validation_fraction > 0 else 0
        if config.validation_fraction > 0:
            n_val = max(1, n_val)
        if n - n_val < 1:
            raise DataError(f"fit: {n} event(s) leave no training events after a validation split of {n_val}")

        # Two independent streams from one seed: weights, and split + shuffling (the latter
        # identical for a fresh and a warm-started fit with the same seed).
        init_seed, data_seed = (int(s) for s in np.random.SeedSequence(config.seed).generate_state(2))
        gen = torch.Generator().manual_seed(data_seed)
        device = torch.device(config.device)
        if init_from is not None:
            if not isinstance(init_from, Reconstruction):
                raise ConfigError("init_from", f"must be a Reconstruction, got {type(init_from).__name__}")
            if init_from.hyperparameters() != self.hyperparameters():
                raise ConfigError(
                    "init_from",
                    f"architecture {init_from.hyperparameters()} differs from this one {self.hyperparameters()}",
                )
            if not init_from.fitted:
                raise ConfigError("init_from", "the previous reconstruction was never fitted")
            net = copy.deepcopy(init_from.net).to("cpu")
        else:
            net = ReconstructionNet(
                **self.hyperparameters(),  # type: ignore[arg-type]
                generator=torch.Generator().manual_seed(init_seed),
            )

        perm = torch.randperm(n, generator=gen)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        if c is None:
            c = d.new_zeros((n, 0))
        if init_from is None:
            net.design_scaler.fit(d[train_idx])
            net.feature_scaler.fit(f[train_idx])
            net.context_scaler.fit(c[train_idx])
            net.target_scaler.fit(e[train_idx].unsqueeze(1))

        net = net.to(device)
        d, f, c, e = d.to(device), f.to(device), c.to(device), e.to(device)
        tr = (d[train_idx], f[train_idx], c[train_idx], e[train_idx])
        va = (d[val_idx], f[val_idx], c[val_idx], e[val_idx])

        start = time.perf_counter()
        result = FitResult(
            initial_train_loss=_eval_loss(net, *tr, loss_fn=loss_fn),
            initial_val_loss=_eval_loss(net, *va, loss_fn=loss_fn) if n_val else None,
            warm_start=init_from is not None,
            n_train=n - n_val,
            n_val=n_val,
        )
        _check_finite_loss(result.initial_train_loss, "the initial training loss", config)
        best_val = result.initial_val_loss
        best_state = copy.deepcopy(net.state_dict())
        result.best_val_loss = best_val
        bad_epochs = 0
        opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        names = [name for name, _ in net.named_parameters()]
        if init_from is not None and init_from.optimizer_state is not None:
            # The moments carry over; lr and weight decay come from this fit's config.
            opt.load_state_dict(
                {
                    "state": {i: dict(init_from.optimizer_state[name]) for i, name in enumerate(names)},
                    "param_groups": opt.state_dict()["param_groups"],
                }
            )
        n_train = n - n_val
        for epoch in range(config.epochs):
            net.train()
            order = torch.randperm(n_train, generator=gen).to(device)
            total = 0.0
            for start_i in range(0, n_train, config.batch_size):
                idx = order[start_i : start_i + config.batch_size]
                loss = loss_fn(net(tr[0][idx], tr[1][idx], tr[2][idx]), tr[3][idx]).mean()
                value = float(loss.detach())
                _check_finite_loss(value, f"the training loss at epoch {epoch}, batch {start_i // config.batch_size}", config)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += value * idx.shape[0]
            result.train_loss.append(total / n_train)
            if n_val:
                v = _eval_loss(net, *va, loss_fn=loss_fn)
                _check_finite_loss(v, f"the validation loss after epoch {epoch}", config)
                result.val_loss.append(v)
                assert best_val is not None
                if v < best_val * (1.0 - config.min_rel_improvement):
                    best_val, result.best_epoch, bad_epochs = v, epoch, 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    bad_epochs += 1
                if config.patience is not None and bad_epochs >= config.patience:
                    result.stopped_early = True
                    break
            else:
                result.best_epoch = epoch
        if n_val:
            net.load_state_dict(best_state)
            result.best_val_loss = best_val
        net.eval()
        result.seconds = time.perf_counter() - start
        opt_state = opt.state_dict()["state"]
        optimizer_state = {
            name: {k: v.detach().to("cpu").clone() for k, v in opt_state[i].items()}
            for i, name in enumerate(names)
            if i in opt_state
        }
        # Commit only now: a failed fit leaves the object as it was.
        self.net, self.fitted, self.history, self.config = net, True, result, config
        self.optimizer_state = optimizer_state or None
        return result

    # ----------------------------------------------------------------- inference
    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this Reconstruction is not fitted: call fit(...) or Reconstruction.load(...) first")

    @torch.no_grad()
    def _predict_tensor(self, d: torch.Tensor, f: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        self.net.eval()
        dev = self.device
        out = []
        for s in range(0, f.shape[0], PREDICT_CHUNK):
            sl = slice(s, s + PREDICT_CHUNK)
            out.append(self.net(d[sl].to(dev), f[sl].to(dev), None if c is None else c[sl].to(dev)).cpu())
        return torch.cat(out)

    def predict(self, design: ArrayLike, features: ArrayLike, context: ArrayLike | None = None) -> ArrayLike:
        """Reconstructed energy (GeV), shape ``n_events``, in the type of ``features``."""
        self._require_fitted()
        d, f, c, _ = self._prepare(design, features, context)
        e_rec = self._predict_tensor(d, f, c)
        if isinstance(features, torch.Tensor):
            dtype = features.dtype if features.is_floating_point() else torch.float32
            return e_rec.to(device=features.device, dtype=dtype)
        return e_rec.numpy().astype(np.float64)

    def per_event_loss(
        self, design: ArrayLike, features: ArrayLike, context: ArrayLike | None, e_true: ArrayLike
    ) -> np.ndarray:
        """AIDO eq. 10 terms per event, ``n_events`` (numpy, GeV)."""
        self._require_fitted()
        d, f, c, e = self._prepare(design, features, context, e_true)
        assert e is not None
        return energy_resolution_loss(self._predict_tensor(d, f, c), e, reduction="none").numpy().astype(np.float64)

    def loss(self, design: ArrayLike, features: ArrayLike, context: ArrayLike | None, e_true: ArrayLike) -> float:
        """AIDO eq. 10 mean loss on the given events (GeV)."""
        return float(self.per_event_loss(design, features, context, e_true).mean())

    def per_design_loss(
        self,
        design_ids: ArrayLike,
        design: ArrayLike,
        features: ArrayLike,
        context: ArrayLike | None,
        e_true: ArrayLike,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean AIDO eq. 10 loss of each design: ``(ids, losses)``, both ``n_designs``, ids sorted.

        ``design_ids`` (``n_events``, integers) says which design each event was simulated with.
        """
        per_event = self.per_event_loss(design, features, context, e_true)
        ids = np.asarray(design_ids.detach().cpu() if isinstance(design_ids, torch.Tensor) else design_ids)
        if ids.shape != per_event.shape:
            raise DataError(f"design_ids: expected shape {per_event.shape} (n_events), got {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise DataError(f"design_ids: expected integers, got dtype {ids.dtype}")
        unique, inverse = np.unique(ids, return_inverse=True)
        sums = np.bincount(inverse, weights=per_event, minlength=unique.size)
        counts = np.bincount(inverse, minlength=unique.size)
        return unique, sums / counts

    # ----------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``weights.safetensors`` and ``reconstruction.json`` into ``directory`` (atomically each).

        The JSON holds the architecture, the fit settings and history, and the SHA-256 of
        the weights file, so a weights file from another save is detected on load.
        """
        from safetensors.torch import save as st_save

        self._require_fitted()
        path = Path(directory)
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.net.state_dict().items()}
        blob = st_save(state, metadata={"format": FORMAT})
        write_bytes_atomic(path / WEIGHTS_FILE, blob)
        opt_sha: str | None = None
        if self.optimizer_state is not None:
            flat = {
                f"{name}.{k}": v.contiguous()
                for name, st in self.optimizer_state.items()
                for k, v in st.items()
            }
            opt_blob = st_save(flat, metadata={"format": FORMAT})
            write_bytes_atomic(path / OPTIMIZER_FILE, opt_blob)
            opt_sha = hashlib.sha256(opt_blob).hexdigest()
        else:
            (path / OPTIMIZER_FILE).unlink(missing_ok=True)
        meta = {
            "format": FORMAT,
            "hyperparameters": self.hyperparameters(),
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
            "optimizer_sha256": opt_sha,
            "fit_config": None if self.config is None else self.config.to_dict(),
            "history": None if self.history is None else self.history.to_dict(),
        }
        write_text_atomic(path / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str], device: str = "cpu") -> "Reconstruction":
        """Read what ``save`` wrote; ``DataError`` names the file and what is wrong with it."""
        path = Path(directory)
        cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise DataError(f"{p}: missing (a saved reconstruction has {CONFIG_FILE} and {WEIGHTS_FILE})")
        meta = read_json_document(cfg_path, FORMAT)
        state = read_weights(w_path, str(meta.get("weights_sha256")), cfg_path.name)
        hp = meta.get("hyperparameters")
        if not isinstance(hp, dict):
            raise DataError(f"{cfg_path}: 'hyperparameters' missing or not an object")
        try:
            obj = cls(**hp)
        except (TypeError, ConfigError) as exc:
            raise DataError(f"{cfg_path}: invalid hyperparameters {hp} ({exc})") from exc
        expected = obj.net.state_dict()
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise DataError(f"{w_path}: tensors do not match the architecture (missing {missing}, unexpected {extra})")
        for k, v in expected.items():
            if state[k].shape != v.shape:
                raise DataError(f"{w_path}: tensor {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
            if not torch.isfinite(state[k]).all():
                raise DataError(f"{w_path}: tensor {k} contains NaN or inf")
        for name in ("design_scaler", "feature_scaler", "context_scaler", "target_scaler"):
            if (state[f"{name}.std"] <= 0).any():
                raise DataError(f"{w_path}: {name}.std must be > 0 (a corrupt normalization)")
        obj.net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
        obj.net.to(torch.device(device)).eval()
        obj.fitted = True
        obj.optimizer_state = _load_optimizer_state(path / OPTIMIZER_FILE, meta.get("optimizer_sha256"), obj)
        try:
            if meta.get("fit_config") is not None:
                obj.config = ReconstructionConfig.from_dict(meta["fit_config"])
            if meta.get("history") is not None:
                obj.history = FitResult(**meta["history"])
        except (TypeError, ConfigError) as exc:
            raise DataError(f"{cfg_path}: invalid fit_config or history ({exc})") from exc
        return obj


def _load_optimizer_state(
    path: Path, sha256: Any, obj: Reconstruction
) -> dict[str, dict[str, torch.Tensor]] | None:
    """Adam moments saved beside the weights (``None`` if the save had none)."""
    if sha256 is None:
        return None
    if not path.is_file():
        raise DataError(f"{path}: missing, but {CONFIG_FILE} records an optimizer state")
    flat = read_weights(path, str(sha256), CONFIG_FILE)
    state: dict[str, dict[str, torch.Tensor]] = {}
    for name, p in obj.net.named_parameters():
        entry = {}
        for k in _ADAM_KEYS:
            key = f"{name}.{k}"
            if key not in flat:
                raise DataError(f"{path}: tensor {key} missing")
            if k != "step" and flat[key].shape != p.shape:
                raise DataError(f"{path}: tensor {key} has shape {tuple(flat[key].shape)}, expected {tuple(p.shape)}")
            entry[k] = flat[key]
        state[name] = entry
    return state


@torch.no_grad()
def _eval_loss(
    net: ReconstructionNet, d: torch.Tensor, f: torch.Tensor, c: torch.Tensor, e: torch.Tensor,
    loss_fn: "Callable[[torch.Tensor, torch.Tensor], torch.Tensor]" = BUILTIN_LOSSES["energy_resolution"],
) -> float:
    """AIDO eq. 10 mean over the given events with ``net`` in eval mode (no updates)."""
    was_training = net.training
    net.eval()
    total = 0.0
    for s in range(0, e.shape[0], PREDICT_CHUNK):
        sl = slice(s, s + PREDICT_CHUNK)
        total += float(loss_fn(net(d[sl], f[sl], c[sl]), e[sl]).sum())
    net.train(was_training)
    return total / e.shape[0]


def _check_finite_loss(value: float, where: str, config: ReconstructionConfig) -> None:
    if not math.isfinite(value):
        raise TrainingError(
            f"{where} is {value}: training diverged (lr = {config.lr}); lower lr or check the inputs' scale. "
            "The model keeps its previous weights."
        )
