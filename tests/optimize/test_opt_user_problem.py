"""Bring your own detector: user simulations, reconstructions, losses, constraints and materials from YAML."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from detopt.errors import ConfigError
from detopt.optimize.config import load_config, validate_config
from detopt.optimize.penalties import built_cost_for, expected_cost_for, linear_constraint_for
from detopt.optimize.run import build_problem, loop_settings
from detopt.reconstruction.loss import BUILTIN_LOSSES

REPO = Path(__file__).resolve().parents[2]
TRACKER = REPO / "examples" / "tracker"
sys.path.insert(0, str(TRACKER))

import tracker  # noqa: E402


def tiny_tracker(run_dir: Path) -> dict[str, Any]:
    config = yaml.safe_load((TRACKER / "config.yaml").read_text())
    config.update(iterations=2, run_dir=str(run_dir), python_path=[str(TRACKER)])
    config["simulation"].update(events_per_design=100, designs_per_iteration=4)
    config["execution"] = {"backend": "serial"}
    config["optimizer"].update(max_steps=5, events=100, global_designs=0)
    config["surrogate"] = {"hidden": [16, 16], "epochs": 2, "train_steps": 10, "ddim_steps": 2}
    return config


def _cli(args: list[str]) -> Any:
    from click.testing import CliRunner
    import typer.main

    from detopt.cli.main import app

    return CliRunner().invoke(typer.main.get_command(app), args)


def test_the_tracker_closed_form_matches_its_simulation() -> None:
    """The documented expected loss is what the simulation + reconstruction really give (to 3 sigma)."""
    import numpy as np

    design = {"lever_arm_m": 0.8, "field_T": 2.0, "sensor": "pixel"}
    cols = tracker.simulate(design, 200_000, 5)
    named = {"lever_arm_m": np.full(200_000, 0.8), "field_T": np.full(200_000, 2.0)}
    k = tracker.reconstruct(named, cols["sagitta_m"][:, None], np.zeros((200_000, 0)))
    per_event = ((k - cols["curvature_per_gev"]) / cols["curvature_per_gev"]) ** 2
    mean, error = per_event.mean(), per_event.std() / np.sqrt(len(per_event))
    assert abs(mean - tracker.expected_loss(0.8, 2.0, "pixel")) < 3 * error
    best = tracker.closed_form_optimum()
    assert best["sensor"] == "maps" and tracker.cost(best["lever_arm_m"], best["field_T"], "maps") == pytest.approx(3.0, rel=1e-3)


def test_a_yaml_only_tracker_runs_and_status_report_evaluate_work(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_tracker(tmp_path / "run")))
    result = _cli(["optimize", str(path)])
    assert result.exit_code == 0, result.output
    assert "sensor=" in result.output and " m" in result.output
    status = _cli(["status", str(tmp_path / "run")])
    assert status.exit_code == 0 and "cost_meur" in status.output and "limit 3 MEUR" in status.output
    report = _cli(["report", str(tmp_path / "run")])
    assert report.exit_code == 0, report.output
    evaluate = _cli(["evaluate", str(tmp_path / "run"), "-n", "400"])
    assert evaluate.exit_code == 0, evaluate.output
    numbers = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    start = numbers["start"]["design"]
    expected = tracker.expected_loss(start["lever_arm_m"], start["field_T"], start["sensor"])
    assert numbers["start"]["loss"] == pytest.approx(expected, rel=0.3)  # 200 test muons


def test_a_run_started_from_python_has_status_report_and_evaluate(tmp_path: Path) -> None:
    from detopt.optimize.loop import run_loop

    config = validate_config(tiny_tracker(tmp_path / "unused"))
    problem = build_problem(config)
    run_loop(problem, loop_settings(config), tmp_path / "py", 1)
    assert not (tmp_path / "py" / "config.yaml").exists()
    assert json.loads((tmp_path / "py" / "run.json").read_text())["source"] == "python"
    assert _cli(["status", str(tmp_path / "py")]).exit_code == 0
    assert _cli(["report", str(tmp_path / "py")]).exit_code == 0
    refused = _cli(["evaluate", str(tmp_path / "py")])
    assert refused.exit_code == 2 and "--config" in refused.stderr
    path = tmp_path / "tracker.yaml"
    path.write_text(yaml.safe_dump(tiny_tracker(tmp_path / "unused")))
    assert _cli(["evaluate", str(tmp_path / "py"), "--config", str(path), "-n", "200"]).exit_code == 0


def test_linear_constraints_and_the_built_cost() -> None:
    config = validate_config(yaml.safe_load((REPO / "examples" / "quick.yaml").read_text()))
    space = config.design_space()
    theta = torch.as_tensor(space.current_encoding(), dtype=torch.float64)
    g = linear_constraint_for(space, {"absorber_0_thickness": 1.0, "absorber_1_thickness": -2.0}, "f")
    assert float(g(theta)) == pytest.approx(40.0 - 2 * 10.0)
    with pytest.raises(ConfigError, match="not a continuous parameter"):
        linear_constraint_for(space, {"absorber_0_material": 1.0}, "penalties.linear[0].coefficients")
    # 50/50 materials: the expected cost prices half of each; the built detector takes the first category
    expected, built = expected_cost_for(space)(theta), built_cost_for(space)(theta)
    assert float(built) != pytest.approx(float(expected))
    probs = theta.clone()
    for name, s in space.encoding_slices().items():
        if s.stop - s.start == 2:
            probs[s] = torch.tensor([0.9, 0.1], dtype=torch.float64)
    one_hot = probs.clone()
    for name, s in space.encoding_slices().items():
        if s.stop - s.start == 2:
            one_hot[s] = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert float(built_cost_for(space)(probs)) == pytest.approx(float(expected_cost_for(space)(one_hot)))


def test_the_built_in_losses() -> None:
    reco, true = torch.tensor([[2.2], [0.9]]), torch.tensor([[2.0], [1.0]])
    assert BUILTIN_LOSSES["relative_resolution"](reco, true).flatten().tolist() == pytest.approx([0.01, 0.01])
    assert BUILTIN_LOSSES["mse"](reco, true).flatten().tolist() == pytest.approx([0.04, 0.01])
    assert BUILTIN_LOSSES["energy_resolution"](reco, true).flatten().tolist() == pytest.approx([0.04 / 3, 0.01 / 2])


MATERIAL = {
    "name": "PbGlass", "density_g_cm3": 5.2, "radiation_length_cm": 1.5, "nuclear_interaction_length_cm": 30.0,
    "critical_energy_mev": 15.0, "dedx_min_mev_cm": 7.0, "z_eff": 50.0, "z_over_a": 0.42,
}


def _quick_with(tmp_path: Path, categories: list[str], materials: list[dict[str, Any]] | None) -> Path:
    config = yaml.safe_load((REPO / "examples" / "quick.yaml").read_text())
    for p in config["design"]["parameters"]:
        if p["name"] == "absorber_0_material":
            p["categories"] = categories
    if materials is not None:
        (tmp_path / "materials.yaml").write_text(yaml.safe_dump({"materials": materials}))
        config["materials"] = "materials.yaml"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_user_material_file_extends_the_table(tmp_path: Path) -> None:
    config, base = load_config(_quick_with(tmp_path, ["Pb", "PbGlass"], [MATERIAL]))
    problem = build_problem(config, base)
    design = {**config.design_space(base).current_design(), "absorber_0_material": "PbGlass"}
    events = problem.simulate(design, 50, 1)
    assert len(events) == 50
    resolved = config.resolved(base)
    assert Path(resolved["materials"]).is_absolute()  # the run's config.yaml still finds the file


@pytest.mark.parametrize(
    ("categories", "materials", "field"),
    [
        (["Pb", "Unobtainium"], None, "absorber_0_material"),
        (["Pb", "PbGlass"], [{**MATERIAL, "density_g_cm3": -1}], "materials[0].density_g_cm3"),
        (["Pb", "PbGlass"], [{**MATERIAL, "name": "lead"}], "materials[0].name"),
        (["Pb", "PbGlass"], [{**MATERIAL, "colour": "grey"}], "materials[0].colour"),
    ],
)
def test_every_category_is_checked_before_any_work(tmp_path: Path, categories: list[str], materials: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        config, base = load_config(_quick_with(tmp_path, categories, materials))
        build_problem(config, base)
    assert field in f"{info.value.field}: {info.value.message}"


def test_geant4_needs_a_definition_of_a_user_material(tmp_path: Path) -> None:
    path = _quick_with(tmp_path, ["Pb", "PbGlass"], [MATERIAL])
    config, base = load_config(path)
    geant4 = validate_config({**config.model_dump(mode="json"), "materials": str(tmp_path / "materials.yaml"),
                              "simulation": {**config.simulation.model_dump(mode="json"), "simulator": "geant4"}})
    with pytest.raises(ConfigError, match="no Geant4 definition"):
        build_problem(geant4, base)
    (tmp_path / "materials.yaml").write_text(yaml.safe_dump({"materials": [{**MATERIAL, "geant4": {"elements": {"Pb": 1, "O": 1}}}]}))
    config, base = load_config(path)
    assert geant4.materials is not None
    space = config.design_space(base)
    geant4.layout(space, config.material_table(base))  # now buildable
