"""The reconstruction network of the AIDO paper (Tables 2 and 3).

A pre-processing block turns the detector design (and the event context, e.g. the
particle type) into one non-negative weight per feature; the weighted features,
concatenated with the design and the context, go through the main block to one
reconstructed energy per event. The gate lets one network serve every design of an
iteration: it learns, as a function of the design, how much each recorded layer counts
(a design-dependent calibration), while the main block corrects the non-linear rest.

Inputs are given in physical units and standardized inside by ``Standardizer`` buffers
fitted on training data, so they travel with ``state_dict``; the output is a standardized
energy mapped back to GeV by the target standardizer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from detopt.errors import ConfigError, DataError
from detopt.standardize import Standardizer

#: AIDO Table 2: pre-processing block theta -> 100 -> 100 -> |F_sim| (ELU, ELU, ReLU).
PAPER_PREPROCESS_HIDDEN: tuple[int, ...] = (100, 100)
#: AIDO Table 3: main block (theta + F_sim) -> 100 -> 100 -> 100 -> 1 (ELU, ELU, ReLU, linear).
PAPER_MAIN_HIDDEN: tuple[int, ...] = (100, 100, 100)
#: Initial bias of the gate's output layer (dimensionless): every feature starts weighted ~1.
GATE_INIT_BIAS: float = 1.0


def _check_hidden(field: str, hidden: Sequence[int], min_len: int) -> tuple[int, ...]:
    widths = tuple(hidden)
    if len(widths) < min_len:
        raise ConfigError(field, f"needs at least {min_len} layer width(s), got {widths}")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ConfigError(field, f"layer widths must be integers >= 1, got {widths}")
    return widths


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default ``nn.Linear`` initialization, drawn from a CPU ``generator``, not the global RNG.

    nn.Linear uses kaiming_uniform_(a=sqrt(5)) for the weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for the bias, which is the same bound for both. Drawn on the CPU and copied, so the weights do
    not depend on the device the network lives on.
    """
    bound = 1.0 / layer.in_features**0.5
    with torch.no_grad():
        w = torch.empty(layer.weight.shape).uniform_(-bound, bound, generator=generator)
        b = torch.empty(layer.bias.shape).uniform_(-bound, bound, generator=generator)
        layer.weight.copy_(w)
        layer.bias.copy_(b)


class ReconstructionNet(nn.Module):
    """AIDO Tables 2-3 reconstruction network; input and output in physical units.

    Shapes: ``design`` is ``n_events x n_design``, ``features`` ``n_events x n_features``
    (deposited energy per active layer, GeV), ``context`` ``n_events x n_context`` (e.g. a
    particle one-hot; omit or pass ``None`` when ``n_context == 0``); ``forward`` returns
    the reconstructed energy, ``n_events`` (GeV).

    The pre-processing block sees the design and the context (the paper has only the
    design; the particle type lets the gate weight layers differently for photons and
    pions, whose sampling fractions differ). Hidden layers of the pre-processing block use
    ELU and its output ReLU; in the main block all hidden layers use ELU except the last,
    which uses ReLU, and the output is linear: with the default widths this is exactly
    the paper's ELU, ELU, ReLU / ELU, ELU, ReLU, linear.

    Parameters are initialized like ``nn.Linear`` but from ``generator`` (a fresh
    ``torch.Generator`` seeded with 0 when ``None``), so constructing a network never
    touches the global RNG.
    """

    def __init__(
        self,
        n_design: int,
        n_features: int,
        n_context: int = 0,
        preprocess_hidden: Sequence[int] = PAPER_PREPROCESS_HIDDEN,
        main_hidden: Sequence[int] = PAPER_MAIN_HIDDEN,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for field, value, low in (("n_design", n_design, 1), ("n_features", n_features, 1), ("n_context", n_context, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(field, f"must be an integer >= {low}, got {value!r}")
        self.n_design = n_design
        self.n_features = n_features
        self.n_context = n_context
        self.preprocess_hidden = _check_hidden("preprocess_hidden", preprocess_hidden, 0)
        self.main_hidden = _check_hidden("main_hidden", main_hidden, 1)

        self.design_scaler = Standardizer(n_design)
        self.feature_scaler = Standardizer(n_features)
        self.context_scaler = Standardizer(n_context)
        self.target_scaler = Standardizer(1)

        # Built on the meta device: nn.Linear's own initialization would draw from the
        # global RNG; real storage is allocated and initialized in reset_parameters.
        pre: list[nn.Module] = []
        width = n_design + n_context
        for h in self.preprocess_hidden:
            pre += [nn.Linear(width, h, device="meta"), nn.ELU()]
            width = h
        pre += [nn.Linear(width, n_features, device="meta"), nn.ReLU()]
        self.preprocess = nn.Sequential(*pre)

        main: list[nn.Module] = []
        width = n_features + n_design + n_context
        for i, h in enumerate(self.main_hidden):
            act: nn.Module = nn.ReLU() if i == len(self.main_hidden) - 1 else nn.ELU()
            main += [nn.Linear(width, h, device="meta"), act]
            width = h
        main += [nn.Linear(width, 1, device="meta")]
        self.main = nn.Sequential(*main)

        self.preprocess.to_empty(device="cpu")
        self.main.to_empty(device="cpu")
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Fresh weights (``nn.Linear`` default scheme) drawn from ``generator``; scalers untouched."""
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        if generator.device.type != "cpu":
            raise ConfigError("generator", f"must be a CPU torch.Generator, got one on {generator.device}")
        for module in (*self.preprocess, *self.main):
            if isinstance(module, nn.Linear):
                _init_linear(module, generator)
        # Open the gate at the start: a ReLU gate that starts closed for some design (or for
        # the single design of a one-detector fit, where its input is constant) has zero
        # gradient and would never learn to read those features.
        gate_out = self.preprocess[-2]
        assert isinstance(gate_out, nn.Linear)  # internal invariant, not user input
        with torch.no_grad():
            gate_out.bias.fill_(GATE_INIT_BIAS)

    def hyperparameters(self) -> dict[str, object]:
        """The constructor arguments, JSON-ready (what ``save`` writes beside the weights)."""
        return {
            "n_design": self.n_design,
            "n_features": self.n_features,
            "n_context": self.n_context,
            "preprocess_hidden": list(self.preprocess_hidden),
            "main_hidden": list(self.main_hidden),
        }

    def _inputs(
        self, design: torch.Tensor, features: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if design.ndim != 2 or design.shape[1] != self.n_design:
            raise DataError(f"design: expected shape (n_events, {self.n_design}), got {tuple(design.shape)}")
        n = design.shape[0]
        if features.ndim != 2 or features.shape != (n, self.n_features):
            raise DataError(
                f"features: expected shape ({n}, {self.n_features}) (n_events x n_features), "
                f"got {tuple(features.shape)}"
            )
        if context is None:
            if self.n_context:
                raise DataError(f"context: the network takes {self.n_context} context column(s), got None")
            context = design.new_zeros((n, 0))
        elif context.ndim != 2 or context.shape != (n, self.n_context):
            raise DataError(
                f"context: expected shape ({n}, {self.n_context}) (n_events x n_context), got {tuple(context.shape)}"
            )
        return self.design_scaler(design), self.feature_scaler(features), self.context_scaler(context)

    def gate(self, design: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Output of the pre-processing block, ``n_events x n_features``, >= 0.

        The weight of each standardized feature for the given design and context.
        """
        n = design.shape[0] if design.ndim == 2 else 0
        zeros = design.new_zeros((n, self.n_features))
        d, _, c = self._inputs(design, zeros, context)
        return self.preprocess(torch.cat([d, c], dim=1))

    def forward(
        self, design: torch.Tensor, features: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Reconstructed energy (GeV), ``n_events``; see the class docstring for input shapes."""
        d, f, c = self._inputs(design, features, context)
        gate = self.preprocess(torch.cat([d, c], dim=1))
        z = self.main(torch.cat([gate * f, d, c], dim=1))
        return self.target_scaler.inverse(z).squeeze(1)
