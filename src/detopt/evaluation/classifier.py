"""Classifier test of a surrogate: the AUC of a small network told to separate simulated from
generated showers on their high-level observables (0.5: indistinguishable; 1: fully separable).

The network (a two-hidden-layer MLP, torch) trains on one half of each sample and the AUC is
measured on the other half, so that overfitting cannot make two equal samples look different.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from detopt.errors import ConfigError, DataError

__all__ = ["ClassifierResult", "classifier_auc", "roc_auc"]


@dataclass(frozen=True)
class ClassifierResult:
    """Test-half AUC (reference = label 0, other = label 1) and what produced it."""

    auc: float
    n_train: int
    n_test: int
    features: tuple[str, ...]
    seed: int
    epochs: int

    def as_dict(self) -> dict[str, object]:
        return {"auc": self.auc, "n_train": self.n_train, "n_test": self.n_test, "features": list(self.features),
                "seed": self.seed, "epochs": self.epochs}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve, P(score of a label-1 entry > score of a label-0 entry) with ties
    counted 1/2 (the Mann-Whitney U statistic divided by n0 n1)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if s.shape != y.shape:
        raise DataError(f"roc_auc: {s.size} scores but {y.size} labels")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n0 == 0 or n1 == 0:
        raise DataError("roc_auc: needs entries of both labels")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size)
    sorted_s = s[order]
    # average ranks (1-based) over ties
    starts = np.flatnonzero(np.concatenate([[True], sorted_s[1:] != sorted_s[:-1]]))
    ends = np.concatenate([starts[1:], [s.size]])
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = 0.5 * (a + 1 + b)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n0 * n1))


def _matrix(x: np.ndarray | Mapping[str, np.ndarray], names: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(x, Mapping):
        keys = tuple(names) if names is not None else tuple(x)
        missing = [k for k in keys if k not in x]
        if missing:
            raise DataError(f"classifier features: missing {missing}; have {sorted(x)}")
        m = np.stack([np.asarray(x[k], dtype=np.float64).reshape(-1) for k in keys], axis=1)
        return m, keys
    m = np.asarray(x, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise DataError(f"classifier features: expected shape (n, n_features), got {m.shape}")
    return m, tuple(names) if names is not None else tuple(f"f{i}" for i in range(m.shape[1]))


def classifier_auc(
    reference: np.ndarray | Mapping[str, np.ndarray],
    other: np.ndarray | Mapping[str, np.ndarray],
    *,
    features: Sequence[str] | None = None,
    seed: int = 0,
    hidden: int = 32,
    epochs: int = 200,
    learning_rate: float = 1e-2,
) -> ClassifierResult:
    """AUC on held-out halves of a classifier separating ``reference`` (e.g. simulation) from ``other``.

    Samples are ``(n, n_features)`` arrays or dicts of ``(n,)`` observables (``features`` picks
    and orders the keys). Each sample is split in two halves at random (``seed``); features are
    standardized with the training half's mean and width; the MLP (``hidden`` units, two tanh
    layers, float32) is trained full-batch with Adam for ``epochs`` steps on the binary cross entropy,
    classes weighted to equal total weight. Every draw comes from ``seed``.
    """
    import torch

    for fname, v, lo in (("hidden", hidden, 1), ("epochs", epochs, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ConfigError(fname, f"must be a whole number >= {lo}, got {v!r}")
    a, names = _matrix(reference, features)
    b, _ = _matrix(other, features if features is not None else (names if isinstance(other, Mapping) else None))
    if a.shape[1] != b.shape[1]:
        raise DataError(f"classifier features: reference has {a.shape[1]} features, other has {b.shape[1]}")
    if a.shape[0] < 4 or b.shape[0] < 4:
        raise DataError(f"classifier: needs at least 4 entries per sample, got {a.shape[0]} and {b.shape[0]}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("classifier: features contain NaN or infinite values")
    rng = np.random.default_rng(seed)
    pa, pb = rng.permutation(a.shape[0]), rng.permutation(b.shape[0])
    ha, hb = a.shape[0] // 2, b.shape[0] // 2
    x_train = np.concatenate([a[pa[:ha]], b[pb[:hb]]])
    y_train = np.concatenate([np.zeros(ha), np.ones(hb)])
    x_test = np.concatenate([a[pa[ha:]], b[pb[hb:]]])
    y_test = np.concatenate([np.zeros(a.shape[0] - ha), np.ones(b.shape[0] - hb)])
    mu, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)

    gen = torch.Generator().manual_seed(int(seed))
    n_in = a.shape[1]

    def init(n_out: int, n_inp: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.randn(n_out, n_inp, generator=gen, dtype=torch.float32) / np.sqrt(n_inp)
        return w.requires_grad_(), torch.zeros(n_out, dtype=torch.float32, requires_grad=True)

    params = [*init(hidden, n_in), *init(hidden, hidden), *init(1, hidden)]

    def forward(x: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3 = params
        h = torch.tanh(x @ w1.T + b1)
        h = torch.tanh(h @ w2.T + b2)
        return (h @ w3.T + b3).squeeze(-1)

    xt = torch.as_tensor((x_train - mu) / sd, dtype=torch.float32)
    yt = torch.as_tensor(y_train, dtype=torch.float32)
    weight = (torch.where(yt > 0.5, 0.5 / max(hb, 1), 0.5 / max(ha, 1)) * yt.numel()).to(torch.float32)
    # Adam (Kingma & Ba 2015, Algorithm 1) written out: torch.optim's first step imports torch._dynamo
    # (seconds), more than the whole training here.
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    for step in range(1, int(epochs) + 1):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(forward(xt), yt, weight=weight)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, a1, a2 in zip(params, grads, m1, m2):
                a1.mul_(beta1).add_(g, alpha=1.0 - beta1)
                a2.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                denom = (a2 / (1.0 - beta2**step)).sqrt_().add_(eps)
                p.addcdiv_(a1, denom, value=-learning_rate / (1.0 - beta1**step))
    with torch.no_grad():
        scores = forward(torch.as_tensor((x_test - mu) / sd, dtype=torch.float32)).double().numpy()
    return ClassifierResult(roc_auc(scores, y_test), int(y_train.size), int(y_test.size), names, int(seed), int(epochs))
