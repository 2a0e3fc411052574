"""Small shower data sets and a briefly trained model shared by the shower-surrogate tests."""

from __future__ import annotations

from detopt.simulation import VoxelGrid
from detopt.simulation.shower_dataset import ShowerDataset, generate_shower_dataset
from detopt.surrogate import TrainConfig
from detopt.surrogate.shower import ShowerDiffusion

GRID = VoxelGrid(n_depth=6, n_radial=4)


def small_dataset(geometry: str = "A", seed: int = 1, n_conditions: int = 8, showers: int = 40) -> ShowerDataset:
    """``n_conditions`` random conditions (10-100 GeV electrons and photons) of ``showers`` maps each."""
    return generate_shower_dataset(
        geometry, n_conditions=n_conditions, showers_per_condition=showers, energy_range=(10.0, 100.0),
        grid=GRID, seed=seed,
    )


def tiny_model(kind: str = "mlp", guidance_dropout: float = 0.0) -> ShowerDiffusion:
    options = {"width": 32, "n_blocks": 1} if kind == "mlp" else {"channels": 8, "n_blocks": 1, "embedding_width": 16}
    data = small_dataset()
    return ShowerDiffusion.build(
        kind, GRID.n_depth, GRID.n_radial, data.condition_names, options, n_train_steps=50,
        guidance_dropout=guidance_dropout,
    )


def trained_tiny_model(kind: str = "mlp", epochs: int = 3, guidance_dropout: float = 0.0) -> tuple[ShowerDiffusion, ShowerDataset]:
    data = small_dataset()
    model = tiny_model(kind, guidance_dropout)
    model.fit(data.conditions, data.maps, TrainConfig(epochs=epochs, batch_size=64, device="cpu", seed=3))
    return model, data
