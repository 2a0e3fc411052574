"""The baseline the reconstruction network must beat: a linear calibration of the summed active energy.

E_rec = a * S + b with S the sum of the active-layer deposits of an event (GeV). The
coefficients minimize AIDO eq. 10 exactly: eq. 10 is a least-squares loss with weight
1 / (E_true + 1) per event, so the fit is a weighted linear least-squares problem with a
closed-form answer (no training, no randomness). With ``context`` (a one-hot, e.g. the
particle type) one (a, b) is fitted per class, the textbook calibration of a
non-compensating calorimeter with separate electromagnetic and hadronic scales.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from detopt.errors import DataError
from detopt.reconstruction.loss import LOSS_OFFSET_GEV, energy_resolution_loss


def _array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot be read as an array of numbers ({exc})") from exc
    if not np.isfinite(a).all():
        raise DataError(f"{name}: contains {int((~np.isfinite(a)).sum())} NaN or inf value(s)")
    return a


class LinearCalibration:
    """E_rec = a * sum(active deposits) + b, fitted by weighted least squares (weights 1/(E_true + 1)).

    ``features``: ``n_events x n_active`` deposits (GeV), or ``n_events`` already summed.
    ``context``: ``None`` for one calibration, or an ``n_events x n_classes`` one-hot for
    one calibration per class. Arguments come in the order of ``Reconstruction``
    (features, context, e_true), so the two are called alike. After ``fit``, ``coefficients`` is ``n_classes x 2``
    (rows: class; columns: a, b in GeV/GeV and GeV).
    """

    def __init__(self) -> None:
        self.coefficients: np.ndarray | None = None

    @staticmethod
    def _summed(features: Any) -> np.ndarray:
        f = _array(features, "features")
        if f.ndim == 2:
            return f.sum(axis=1)
        if f.ndim == 1:
            return f
        raise DataError(f"features: expected shape (n_events, n_active) or (n_events,), got {f.shape}")

    @staticmethod
    def _classes(context: Any, n: int) -> np.ndarray:
        if context is None:
            return np.zeros(n, dtype=np.int64)
        c = _array(context, "context")
        if c.ndim != 2 or c.shape[0] != n or c.shape[1] < 1:
            raise DataError(f"context: expected a one-hot of shape ({n}, n_classes), got {c.shape}")
        if not (np.isin(c, (0.0, 1.0)).all() and (c.sum(axis=1) == 1).all()):
            raise DataError("context: LinearCalibration needs a one-hot (each row a single 1, the rest 0)")
        return c.argmax(axis=1)

    def fit(self, features: Any, context: Any, e_true: Any) -> "LinearCalibration":
        """Fit (a, b) per class minimizing AIDO eq. 10 on the given events."""
        s = self._summed(features)
        e = _array(e_true, "e_true")
        if e.shape != s.shape:
            raise DataError(f"e_true: expected shape {s.shape} (n_events), got {e.shape}")
        if (e < 0).any():
            raise DataError(f"e_true: true energies must be >= 0 GeV, got minimum {e.min():.4g}")
        cls = self._classes(context, s.size)
        n_classes = 1 if context is None else np.asarray(context).shape[1]
        coef = np.zeros((n_classes, 2))
        for k in range(n_classes):
            m = cls == k
            if not m.any():
                raise DataError(f"context: class {k} has no events to fit a calibration on")
            sw = np.sqrt(1.0 / (e[m] + LOSS_OFFSET_GEV))
            design = np.stack([s[m], np.ones(m.sum())], axis=1) * sw[:, None]
            # lstsq returns the minimum-norm answer when S is constant (e.g. all zero):
            # then a * S + b is the weighted mean energy, the best constant guess.
            coef[k], *_ = np.linalg.lstsq(design, e[m] * sw, rcond=None)
        self.coefficients = coef
        return self

    def predict(self, features: Any, context: Any = None) -> np.ndarray:
        """Reconstructed energy (GeV), ``n_events``."""
        if self.coefficients is None:
            raise DataError("LinearCalibration: call fit(...) before predict(...)")
        s = self._summed(features)
        n_classes = self.coefficients.shape[0]
        if context is None and n_classes > 1:
            raise DataError(f"context: this calibration has {n_classes} classes; pass the one-hot context")
        cls = self._classes(context, s.size)
        if cls.size and cls.max() >= n_classes:
            raise DataError(f"context: has more columns than the {n_classes} class(es) fitted")
        a, b = self.coefficients[cls, 0], self.coefficients[cls, 1]
        return a * s + b

    def loss(self, features: Any, context: Any, e_true: Any) -> float:
        """AIDO eq. 10 mean loss of the calibration on the given events."""
        e_rec = self.predict(features, context)
        e = _array(e_true, "e_true")
        return float(energy_resolution_loss(torch.as_tensor(e_rec), torch.as_tensor(e)))
