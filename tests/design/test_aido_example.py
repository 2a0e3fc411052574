"""The AIDO paper's sampling calorimeter (section 6) as a design space."""

from __future__ import annotations

import numpy as np
import pytest

from detopt.design import ContinuousParameter, DesignSpace, DiscreteParameter
from detopt.examples.aido import AIDO_ACTIVE, AIDO_LAYER_NAMES, AIDO_LAYERS, aido_design_space


def test_layers_alternate_absorber_and_scintillator() -> None:
    assert AIDO_LAYER_NAMES == (
        "absorber_0",
        "scintillator_0",
        "absorber_1",
        "scintillator_1",
        "absorber_2",
        "scintillator_2",
    )
    assert [active for _, active in AIDO_LAYERS] == [False, True] * 3
    assert AIDO_ACTIVE["scintillator_1"] is True and AIDO_ACTIVE["absorber_0"] is False


def test_twelve_parameters_with_the_paper_start() -> None:
    space = aido_design_space()
    assert len(space.parameters) == 12
    assert [p.name for p in space.continuous] == [f"{layer}_thickness" for layer in AIDO_LAYER_NAMES]
    assert [p.name for p in space.discrete] == [f"{layer}_material" for layer in AIDO_LAYER_NAMES]
    assert [p.value for p in space.continuous] == [40.0, 5.0, 10.0, 5.0, 10.0, 5.0]
    for p in space.continuous:
        assert isinstance(p, ContinuousParameter)
        assert (p.bounds, p.sigma, p.unit, p.optimizable) == ((0.01, 200.0), 2.5, "cm", True)
    for layer, active in AIDO_LAYERS:
        material = space[f"{layer}_material"]
        assert isinstance(material, DiscreteParameter)
        assert material.probabilities == (0.5, 0.5)
        if active:
            assert material.categories == ("PbWO4", "polystyrene")
            assert material.cost_per_unit == (2500.0, 0.01)
        else:
            assert material.categories == ("Pb", "Fe")
            assert material.cost_per_unit == (25.0, 4.16)
    assert space.encoding_size == 6 + 12
    np.testing.assert_array_equal(space.covariance(), np.diag([2.5**2] * 6))


def test_expected_cost_of_the_start_design() -> None:
    """AIDO eq. 8 at the start: sum_l d_l (c_l . P) = 60 cm x 14.58 + 15 cm x 1250.005 EUR/cm."""
    space = aido_design_space()
    cost = sum(
        space[f"{layer}_thickness"].value  # type: ignore[union-attr]
        * float(np.dot(space[f"{layer}_material"].cost_per_unit, space[f"{layer}_material"].probabilities))  # type: ignore[union-attr, arg-type]
        for layer in AIDO_LAYER_NAMES
    )
    assert cost == pytest.approx(60 * 14.58 + 15 * 1250.005)  # 19,624.9 EUR, well under the 200k EUR budget
    assert sum(p.value for p in space.continuous) == 75.0  # cm, under the 200 cm limit


def test_sampled_designs_are_physical_and_round_trip() -> None:
    space = aido_design_space()
    designs = space.sample(400, np.random.default_rng(0))
    thicknesses = np.array([[d[p.name] for p in space.continuous] for d in designs])
    assert thicknesses.min() >= 0.01
    assert space.encode(designs).shape == (400, 18)
    assert DesignSpace.from_yaml(space.to_yaml()) == space
