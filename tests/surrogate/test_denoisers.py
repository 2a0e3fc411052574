"""The AIDO MLP denoiser: Table-1 architecture, time embeddings, the bound fast path, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detopt.errors import ConfigError, DataError
from detopt.surrogate import Denoiser, MLPDenoiser, bind_denoiser


def _make(time_embedding: str = "scalar", **kw) -> MLPDenoiser:
    net = MLPDenoiser(1, 21, time_embedding=time_embedding, n_train_steps=100, **kw)  # type: ignore[arg-type]
    net.reset_parameters(torch.Generator().manual_seed(0))
    return net


def test_default_is_aido_table_1() -> None:
    """Input = design + context + true target (cond) + noisy target + time step; 200, 100 ELU; linear out."""
    net = MLPDenoiser(x_dim=1, cond_dim=18 + 2 + 1)
    widths = [(layer.in_features, layer.out_features) for layer in net.layers]
    assert widths == [(18 + 2 + 1 + 1 + 1, 200), (200, 100), (100, 1)]
    assert net.activation == "elu" and net.time_embedding == "scalar"
    assert isinstance(net, Denoiser)


@pytest.mark.parametrize("time_embedding", ["scalar", "sinusoidal", "learned"])
def test_forward_shape_and_time_dependence(time_embedding: str) -> None:
    net = _make(time_embedding)
    g = torch.Generator().manual_seed(1)
    x, c = torch.randn(7, 1, generator=g), torch.randn(7, 21, generator=g)
    out0 = net(x, torch.zeros(7, dtype=torch.long), c)
    out1 = net(x, torch.full((7,), 60), c)
    assert out0.shape == (7, 1)
    assert not torch.allclose(out0, out1)


@pytest.mark.parametrize("time_embedding", ["scalar", "sinusoidal", "learned"])
@pytest.mark.parametrize("activation", ["elu", "silu", "relu", "gelu", "tanh"])
def test_bound_fast_path_equals_forward(time_embedding: str, activation: str) -> None:
    net = _make(time_embedding, activation=activation)
    net.chunk_rows = 5  # force several chunks
    g = torch.Generator().manual_seed(2)
    x, c = torch.randn(13, 1, generator=g), torch.randn(13, 21, generator=g)
    bound = net.bind(c)
    for t in (0, 42, 99):
        ref = net(x, torch.full((13,), t), c)
        with torch.no_grad():  # in-place activations
            fast = bound(x, t)
        assert torch.allclose(fast, ref, atol=1e-5), (t, (fast - ref).abs().max())
        assert torch.allclose(bound(x, t), ref, atol=1e-5)  # with autograd


def test_bound_path_is_differentiable_in_cond() -> None:
    net = _make("sinusoidal").double()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 1, generator=g, dtype=torch.float64)
    c = torch.randn(4, 21, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda cc: net.bind(cc)(x, 17), (c,))


def test_event_shape_maps() -> None:
    """x may be an energy map, n x C x H x W; the MLP flattens it."""
    net = MLPDenoiser((2, 3, 4), cond_dim=5, hidden=(16,))
    x = torch.randn(6, 2, 3, 4)
    out = net(x, torch.arange(6), torch.randn(6, 5))
    assert out.shape == x.shape
    assert net.bind(torch.randn(6, 5))(x, 3).shape == x.shape


def test_generic_callable_is_bound_by_repeating_t() -> None:
    seen = {}

    def f(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        seen["t"] = t
        return x_t * 0

    bind_denoiser(f, torch.zeros(3, 2))(torch.ones(3, 1), 5)
    assert seen["t"].tolist() == [5, 5, 5]


def test_reset_parameters_is_reproducible() -> None:
    a, b = _make("learned"), _make("learned")
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_config_round_trip() -> None:
    net = MLPDenoiser(3, 4, hidden=(8, 8, 8), activation="silu", time_embedding="learned", n_train_steps=50)
    again = MLPDenoiser.from_config(net.to_config())
    assert again.to_config() == net.to_config()
    assert [p.shape for p in again.parameters()] == [p.shape for p in net.parameters()]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"hidden": ()}, "hidden"),
        ({"hidden": (0,)}, "hidden"),
        ({"activation": "swish"}, "activation"),
        ({"time_embedding": "fourier"}, "time_embedding"),
        ({"time_embedding": "sinusoidal", "embedding_dim": 7}, "embedding_dim"),
        ({"n_train_steps": 1}, "n_train_steps"),
        ({"x_dim": 0}, "x_dim"),
        ({"cond_dim": -1}, "cond_dim"),
    ],
)
def test_bad_config(kw: dict, field: str) -> None:
    args = {"x_dim": 1, "cond_dim": 2, **kw}
    with pytest.raises(ConfigError) as err:
        MLPDenoiser(**args)
    assert err.value.field == field


def test_wrong_shapes_name_the_input() -> None:
    net = _make()
    with pytest.raises(DataError, match="cond"):
        net(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), torch.zeros(3, 20))
    with pytest.raises(DataError, match="x_t"):
        net(torch.zeros(4, 1), torch.zeros(3, dtype=torch.long), torch.zeros(3, 21))
    with pytest.raises(DataError, match="x_t"):
        net(torch.zeros(3), torch.zeros(3, dtype=torch.long), torch.zeros(3, 21))
    with pytest.raises(DataError, match="t:"):
        net(torch.zeros(3, 1), torch.zeros(2, dtype=torch.long), torch.zeros(3, 21))
    with pytest.raises(DataError, match="x_t"):
        net.bind(torch.zeros(3, 21))(torch.zeros(2, 1), 0)


def test_is_an_nn_module_with_state_dict() -> None:
    net = _make("learned")
    assert isinstance(net, nn.Module)
    assert "time_table.weight" in net.state_dict()
