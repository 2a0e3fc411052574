"""Reconstruction: the AIDO network (Tables 2-3), its loss (eq. 10) and a linear-calibration baseline.

- ``energy_resolution_loss``: AIDO eq. 10, per event or averaged (the surrogate imports it too);
- ``ReconstructionNet``: the torch module (pre-processing gate x features, main block);
- ``Reconstruction``: training (Adam, early stopping, warm start), prediction, per-design
  loss, safetensors + JSON persistence;
- ``LinearCalibration``: E_rec = a * (summed active energy) + b, the baseline to beat.
"""

from detopt.reconstruction.baseline import LinearCalibration
from detopt.reconstruction.loss import LOSS_OFFSET_GEV, energy_resolution_loss
from detopt.reconstruction.model import (
    FitResult,
    NotFittedError,
    Reconstruction,
    ReconstructionConfig,
    TrainingError,
)
from detopt.reconstruction.network import ReconstructionNet

__all__ = [
    "LOSS_OFFSET_GEV",
    "FitResult",
    "LinearCalibration",
    "NotFittedError",
    "Reconstruction",
    "ReconstructionConfig",
    "ReconstructionNet",
    "TrainingError",
    "energy_resolution_loss",
]
