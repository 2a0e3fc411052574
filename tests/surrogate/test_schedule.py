"""Noise schedules: values, forward-process statistics, prediction algebra, JSON round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch

from detopt.errors import ConfigError
from detopt.surrogate import NoiseSchedule


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [2, 10, 100, 1000])
def test_alphas_cumprod_is_a_decreasing_signal_fraction(kind: str, steps: int) -> None:
    s = NoiseSchedule(kind, steps)
    ab = s.alphas_cumprod
    assert ab.shape == (steps,)
    assert torch.all(ab[1:] < ab[:-1])
    assert torch.all((ab > 0) & (ab < 1))
    assert torch.all((s.betas > 0) & (s.betas < 1))
    assert torch.allclose(torch.cumprod(1 - s.betas, 0), ab, rtol=1e-12)


def test_linear_schedule_is_ho_et_al_at_1000_steps_and_scaled_below() -> None:
    s = NoiseSchedule("linear", 1000)
    assert float(s.betas[0]) == pytest.approx(1e-4)
    assert float(s.betas[-1]) == pytest.approx(0.02)
    # Ho et al.: alpha_bar_T ~ 4e-5, i.e. x_T is pure noise.
    assert float(s.alphas_cumprod[-1]) == pytest.approx(4.0e-5, rel=0.1)
    # With 100 steps the betas are scaled by 10, so the chain still ends in noise.
    short = NoiseSchedule("linear", 100)
    assert float(short.betas[0]) == pytest.approx(1e-3)
    assert float(short.betas[-1]) == pytest.approx(0.2)
    assert float(short.alphas_cumprod[-1]) < 1e-4
    unscaled = NoiseSchedule("linear", 100, scale_to_steps=False)
    assert float(unscaled.alphas_cumprod[-1]) > 0.3  # why the scaling exists


def test_cosine_endpoints() -> None:
    """Nichol & Dhariwal eq. 17: alpha_bar starts ~1 and ends ~0; the middle is cos^2 of the offset angle."""
    s = NoiseSchedule("cosine", 1000)
    assert 1 - float(s.alphas_cumprod[0]) < 1e-4
    assert float(s.alphas_cumprod[-1]) < 1e-6
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert float(s.alphas_cumprod[499]) == pytest.approx(f(0.5) / f(0.0), rel=1e-9)
    assert float(s.betas.max()) <= 0.999


def test_add_noise_statistics() -> None:
    s = NoiseSchedule("linear", 100)
    g = torch.Generator().manual_seed(0)
    n, t = 200_000, 37
    x0 = torch.full((n, 1), 2.0)
    noise = torch.randn(n, 1, generator=g)
    x_t = s.add_noise(x0, noise, torch.full((n,), t))
    ab = float(s.alphas_cumprod[t])
    assert float(x_t.mean()) == pytest.approx(2.0 * math.sqrt(ab), abs=5e-3)
    assert float(x_t.var()) == pytest.approx(1.0 - ab, rel=1e-2)


def test_add_noise_broadcasts_over_event_dims() -> None:
    s = NoiseSchedule("cosine", 50)
    x0 = torch.ones(4, 2, 3, 5)
    noise = torch.zeros_like(x0)
    t = torch.tensor([0, 10, 20, 49])
    x_t = s.add_noise(x0, noise, t)
    expected = s.alphas_cumprod[t].sqrt().float()
    assert torch.allclose(x_t[:, 1, 2, 3], expected)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_split_prediction_inverts_the_forward_process(prediction: str) -> None:
    s = NoiseSchedule("cosine", 100)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(64, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 3, generator=g, dtype=torch.float64)
    for t in (0, 50, 98):
        x_t = s.add_noise(x0, eps, t)
        output = eps if prediction == "epsilon" else s.velocity(x0, eps, t)
        x0_hat, eps_hat = s.split_prediction(output, x_t, t, prediction)
        assert torch.allclose(x0_hat, x0, atol=1e-8)
        assert torch.allclose(eps_hat, eps, atol=1e-8)


def test_config_round_trip_through_json() -> None:
    s = NoiseSchedule("cosine", 250)
    again = NoiseSchedule.from_config(json.loads(json.dumps(s.to_config())))
    assert again == s
    assert torch.equal(again.alphas_cumprod, s.alphas_cumprod)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"kind": "sigmoid"}, "schedule.kind"),
        ({"n_train_steps": 1}, "schedule.n_train_steps"),
        ({"n_train_steps": 10.5}, "schedule.n_train_steps"),
        ({"beta_start": 0.1, "beta_end": 0.01}, "schedule.beta_start"),
        ({"unknown": 1}, "schedule"),
    ],
)
def test_bad_config_names_the_field(config: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        NoiseSchedule.from_config(config)
    assert err.value.field == field


def test_ddim_timesteps() -> None:
    s = NoiseSchedule("linear", 100)
    assert s.ddim_timesteps(100) == list(range(99, -1, -1))
    assert s.ddim_timesteps(10) == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    quad = s.ddim_timesteps(10, "quadratic")
    assert quad[0] == 99 and quad[-1] == 0 and len(set(quad)) == 10
    assert all(a > b for a, b in zip(quad, quad[1:]))
    assert s.ddim_timesteps(100, "quadratic") == list(range(99, -1, -1))
    for bad in (0, 101, 2.5):
        with pytest.raises(ConfigError, match="n_steps"):
            s.ddim_timesteps(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="spacing"):
        s.ddim_timesteps(10, "karras")  # type: ignore[arg-type]
