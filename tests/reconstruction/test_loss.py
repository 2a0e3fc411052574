"""AIDO eq. 10 on hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.reconstruction import LOSS_OFFSET_GEV, energy_resolution_loss

E_REC = [2.0, 5.0, 10.0]
E_TRUE = [1.0, 4.0, 12.0]
# (2-1)^2/(1+1) = 0.5; (5-4)^2/(4+1) = 0.2; (10-12)^2/(12+1) = 4/13
TERMS = [0.5, 0.2, 4.0 / 13.0]


def test_offset_is_one_gev() -> None:
    assert LOSS_OFFSET_GEV == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hand_computed_values(dtype: torch.dtype) -> None:
    e_rec, e_true = torch.tensor(E_REC, dtype=dtype), torch.tensor(E_TRUE, dtype=dtype)
    per_event = energy_resolution_loss(e_rec, e_true, reduction="none")
    assert per_event.dtype == dtype
    np.testing.assert_allclose(per_event.numpy(), TERMS, rtol=1e-6)
    assert float(energy_resolution_loss(e_rec, e_true)) == pytest.approx(sum(TERMS) / 3, rel=1e-6)
    assert float(energy_resolution_loss(e_rec, e_true, reduction="sum")) == pytest.approx(sum(TERMS), rel=1e-6)


def test_perfect_reconstruction_is_zero_and_relative_weighting() -> None:
    e = torch.tensor([1.0, 10.0, 100.0])
    assert float(energy_resolution_loss(e, e)) == 0.0
    # The same 1 GeV error costs 10x less at 19 GeV than at 1 GeV: (1/20) / (1/2).
    lo = energy_resolution_loss(torch.tensor([2.0]), torch.tensor([1.0]))
    hi = energy_resolution_loss(torch.tensor([20.0]), torch.tensor([19.0]))
    assert float(hi / lo) == pytest.approx(0.1)


def test_gradient_matches_analytic() -> None:
    e_rec = torch.tensor(E_REC, dtype=torch.float64, requires_grad=True)
    e_true = torch.tensor(E_TRUE, dtype=torch.float64)
    energy_resolution_loss(e_rec, e_true).backward()
    expected = 2 * (e_rec.detach() - e_true) / (e_true + 1) / 3
    torch.testing.assert_close(e_rec.grad, expected)


def test_batched_shape_kept() -> None:
    e_rec = torch.ones(4, 5) * 3
    e_true = torch.ones(4, 5)
    out = energy_resolution_loss(e_rec, e_true, reduction="none")
    assert out.shape == (4, 5)
    assert float(out[0, 0]) == pytest.approx(2.0)  # (3-1)^2 / 2


def test_no_silent_broadcast() -> None:
    with pytest.raises(DataError, match=r"e_rec shape \(3, 1\) differs from e_true shape \(3,\)"):
        energy_resolution_loss(torch.ones(3, 1), torch.ones(3))


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="reduction"):
        energy_resolution_loss(torch.ones(3), torch.ones(3), reduction="max")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="torch tensors"):
        energy_resolution_loss(np.ones(3), np.ones(3))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no events"):
        energy_resolution_loss(torch.ones(0), torch.ones(0))
