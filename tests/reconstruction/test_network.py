"""The AIDO Tables 2-3 network: shapes, layers, gating and output scaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detopt.errors import ConfigError, DataError
from detopt.reconstruction import ReconstructionNet


def _inputs(n: int = 7, n_design: int = 4, n_features: int = 3, n_context: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, n_design, generator=g),
        torch.rand(n, n_features, generator=g) * 5,
        torch.eye(n_context)[torch.randint(0, n_context, (n,), generator=g)],
    )


def test_paper_architecture_layers_and_parameter_count() -> None:
    n_design, n_features, n_context = 12, 3, 2  # the AIDO example: 12 parameters, 3 scintillators
    net = ReconstructionNet(n_design, n_features, n_context)
    pre = [type(m) for m in net.preprocess]
    main = [type(m) for m in net.main]
    assert pre == [nn.Linear, nn.ELU, nn.Linear, nn.ELU, nn.Linear, nn.ReLU]  # Table 2
    assert main == [nn.Linear, nn.ELU, nn.Linear, nn.ELU, nn.Linear, nn.ReLU, nn.Linear]  # Table 3
    widths = [(m.in_features, m.out_features) for m in net.main if isinstance(m, nn.Linear)]
    assert widths == [(n_features + n_design + n_context, 100), (100, 100), (100, 100), (100, 1)]
    n_in = n_design + n_context
    expected = (n_in * 100 + 100) + (100 * 100 + 100) + (100 * n_features + n_features)
    expected += (n_features + n_in) * 100 + 100 + 2 * (100 * 100 + 100) + 101
    assert sum(p.numel() for p in net.parameters()) == expected == 34_004


def test_shapes() -> None:
    net = ReconstructionNet(4, 3, 2, preprocess_hidden=(16,), main_hidden=(8, 8))
    d, f, c = _inputs()
    assert net(d, f, c).shape == (7,)
    gate = net.gate(d, c)
    assert gate.shape == (7, 3)
    assert (gate >= 0).all()
    no_ctx = ReconstructionNet(4, 3)
    assert no_ctx(d, f).shape == (7,)
    assert no_ctx(d, f, torch.zeros(7, 0)).shape == (7,)


def test_gate_starts_open() -> None:
    """A closed ReLU gate never opens (zero gradient), so every feature starts weighted."""
    net = ReconstructionNet(4, 3, 2)
    d, _, c = _inputs(n=200)
    assert (net.gate(d, c) > 0).float().mean() > 0.95


def test_zero_gate_makes_output_independent_of_features() -> None:
    net = ReconstructionNet(4, 3, 2)
    d, f, c = _inputs()
    last = net.preprocess[-2]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    out = net(d, f, c)
    out_other = net(d, f * 10 + 3, c)
    torch.testing.assert_close(out, out_other, rtol=0, atol=0)
    # ... while the design still enters the main block directly.
    assert not torch.allclose(net(d + 1, f, c), out)


def test_features_matter_with_open_gate() -> None:
    net = ReconstructionNet(4, 3, 2)
    d, f, c = _inputs()
    assert (net(d, f * 2, c) - net(d, f, c)).abs().max() > 1e-3


def test_output_is_in_target_units() -> None:
    """The main block predicts a standardized energy; the target scaler maps it to GeV."""
    net = ReconstructionNet(4, 3, 2)
    with torch.no_grad():
        net.target_scaler.mean.fill_(10.5)
        net.target_scaler.std.fill_(5.5)
        net.main[-1].weight.zero_()
        net.main[-1].bias.fill_(1.0)
    d, f, c = _inputs()
    torch.testing.assert_close(net(d, f, c), torch.full((7,), 16.0))


def test_inputs_are_standardized() -> None:
    """Shifting and scaling an input together with its standardizer leaves the output unchanged."""
    net = ReconstructionNet(4, 3, 2)
    d, f, c = _inputs()
    before = net(d, f, c)
    with torch.no_grad():
        net.feature_scaler.mean.fill_(3.0)
        net.feature_scaler.std.fill_(2.0)
    torch.testing.assert_close(net(d, f * 2 + 3, c), before)


def test_seeded_init_and_no_global_rng() -> None:
    state = torch.random.get_rng_state()
    a = ReconstructionNet(4, 3, 2, generator=torch.Generator().manual_seed(5))
    b = ReconstructionNet(4, 3, 2, generator=torch.Generator().manual_seed(5))
    c = ReconstructionNet(4, 3, 2, generator=torch.Generator().manual_seed(6))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.main[0].weight, c.main[0].weight)


def test_float64() -> None:
    net = ReconstructionNet(4, 3, 2).double()
    d, f, c = (x.double() for x in _inputs())
    assert net(d, f, c).dtype == torch.float64


def test_differentiable_in_design() -> None:
    net = ReconstructionNet(4, 3, 2)
    d, f, c = _inputs()
    d.requires_grad_(True)
    net(d, f, c).sum().backward()
    assert d.grad is not None and d.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_design": 0, "n_features": 3}, "n_design"),
        ({"n_design": 2, "n_features": 0}, "n_features"),
        ({"n_design": 2, "n_features": 3, "n_context": -1}, "n_context"),
        ({"n_design": 2, "n_features": 3, "main_hidden": ()}, "main_hidden"),
        ({"n_design": 2, "n_features": 3, "preprocess_hidden": (10, 0)}, "preprocess_hidden"),
        ({"n_design": 2.0, "n_features": 3}, "n_design"),
    ],
)
def test_bad_hyperparameters(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReconstructionNet(**kwargs)
    assert info.value.field == field


def test_wrong_input_shapes() -> None:
    net = ReconstructionNet(4, 3, 2)
    d, f, c = _inputs()
    with pytest.raises(DataError, match=r"design: expected shape \(n_events, 4\)"):
        net(d[:, :3], f, c)
    with pytest.raises(DataError, match=r"features: expected shape \(7, 3\)"):
        net(d, f[:5], c)
    with pytest.raises(DataError, match=r"context: expected shape \(7, 2\)"):
        net(d, f, c[:, :1])
    with pytest.raises(DataError, match="context: the network takes 2 context column"):
        net(d, f)
