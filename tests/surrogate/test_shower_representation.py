"""The shower code keeps the absolute energy and inverts exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.surrogate.shower import ShowerRepresentation

from .shower_fixtures import small_dataset


@pytest.fixture(scope="module")
def maps() -> np.ndarray:
    return small_dataset(n_conditions=3, showers=20).maps


def test_round_trip_is_exact_to_float64_precision(maps: np.ndarray) -> None:
    rep = ShowerRepresentation(6, 4)
    back = rep.decode(rep.encode(maps)).numpy()
    scale = maps.max()
    assert np.max(np.abs(back - maps)) < 1e-12 * scale


def test_round_trip_in_float32_keeps_each_voxel_to_1e_5(maps: np.ndarray) -> None:
    rep = ShowerRepresentation(6, 4)
    back = rep.decode(rep.encode(maps).to(torch.float32)).numpy()
    big = maps > 1e-3 * maps.max()
    assert np.max(np.abs(back[big] / maps[big] - 1.0)) < 1e-5


def test_code_carries_the_absolute_energy_not_a_normalized_image(maps: np.ndarray) -> None:
    rep = ShowerRepresentation(6, 4)
    codes = rep.encode(maps)
    totals = maps.reshape(len(maps), -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(np.exp(codes[:, 0].numpy()), totals + rep.energy_floor_gev, rtol=1e-12)
    # Scaling every shower by 2 shifts only the energy entry, by log 2.
    doubled = rep.encode(2.0 * maps.astype(np.float64))
    np.testing.assert_allclose((doubled[:, 0] - codes[:, 0]).numpy(), np.log(2.0), atol=1e-6)
    np.testing.assert_allclose(doubled[:, 1:].numpy(), codes[:, 1:].numpy(), atol=1e-12)


def test_decode_gives_the_encoded_total_even_for_perturbed_codes(maps: np.ndarray) -> None:
    rep = ShowerRepresentation(6, 4)
    codes = rep.encode(maps)
    noisy = codes + 0.3 * torch.randn(codes.shape, generator=torch.Generator().manual_seed(0), dtype=codes.dtype)
    out = rep.decode(noisy)
    assert (out >= 0).all()
    np.testing.assert_allclose(out.sum(dim=(1, 2)).numpy(), np.exp(noisy[:, 0].numpy()) - rep.energy_floor_gev, rtol=1e-10)


def test_empty_map_round_trips_to_zero() -> None:
    rep = ShowerRepresentation(2, 3)
    out = rep.decode(rep.encode(np.zeros((1, 2, 3), dtype=np.float32)))
    assert torch.isfinite(out).all() and float(out.abs().max()) < 1e-9


def test_wrong_shape_and_negative_energy_are_data_errors() -> None:
    rep = ShowerRepresentation(6, 4)
    with pytest.raises(DataError, match=r"expected shape \(n, 6, 4\)"):
        rep.encode(np.ones((3, 4, 6)))
    with pytest.raises(DataError, match=">= 0 GeV"):
        rep.encode(-np.ones((1, 6, 4)))
    with pytest.raises(DataError, match="1 \\+ n_depth"):
        rep.decode(torch.zeros(2, 5))
    with pytest.raises(ConfigError, match="n_depth"):
        ShowerRepresentation(0, 4)
