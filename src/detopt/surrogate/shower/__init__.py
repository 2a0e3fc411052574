"""Shower-level diffusion surrogate: energy maps (depth x radius) generated from physical conditions.

``ShowerRepresentation`` (exactly invertible, keeps the energy scale), denoisers over depth x
radius, ``ShowerDiffusion`` (training, DDIM sampling, classifier-free guidance, save/load,
extrapolation warnings) and adaptation to a new geometry (LoRA via peft, BitFit, full
fine-tuning, training from scratch). Built on the surrogate core (``detopt.surrogate``).
"""

from detopt.surrogate.shower.denoiser import ShowerConvNet, ShowerMLP, ShowerUNet, build_denoiser
from detopt.surrogate.shower.model import ExtrapolationWarning, ShowerDiffusion, state_checksum
from detopt.surrogate.shower.representation import ShowerRepresentation

__all__ = [
    "ExtrapolationWarning",
    "ShowerConvNet",
    "ShowerDiffusion",
    "ShowerMLP",
    "ShowerRepresentation",
    "ShowerUNet",
    "build_denoiser",
    "state_checksum",
]
