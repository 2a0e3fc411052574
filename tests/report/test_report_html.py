"""The HTML report opens with the answer: named materials, units, the fresh-simulation verdict with its uncertainty."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import typer.main
import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from malformed import tiny_config  # noqa: E402

from detopt.cli.main import app  # noqa: E402


def test_report_of_a_tiny_run_names_materials_and_the_verdict(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = typer.main.get_command(app)
    runner = CliRunner()
    assert runner.invoke(command, ["optimize", str(path)]).exit_code == 0
    no_verdict = runner.invoke(command, ["report", str(tmp_path / "run")])
    assert no_verdict.exit_code == 0
    text = (tmp_path / "run" / "report" / "index.html").read_text()
    assert "detopt evaluate" in text and "Verdict" not in text
    assert runner.invoke(command, ["evaluate", str(tmp_path / "run"), "-n", "200"]).exit_code == 0
    assert runner.invoke(command, ["report", str(tmp_path / "run")]).exit_code == 0
    text = (tmp_path / "run" / "report" / "index.html").read_text()
    verdict = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    head = text.split("<h2>")[1]
    # the chosen material of every material parameter, named, with its probability; thicknesses with their unit
    for name in ("absorber_0_material", "scintillator_0_material"):
        assert re.search(rf"<td>{name}</td><td>(Pb|Fe|PbWO4|polystyrene) \(P=0\.\d\d\)</td><td>(Pb|Fe|PbWO4|polystyrene) \(P=[01]\.\d\d\)</td>", head)
    assert re.search(r"<td>absorber_0_thickness</td><td>40 cm</td><td>[\d.]+ cm</td>", head)
    # the verdict with its uncertainty, the same numbers as evaluation.json
    assert f"{verdict['final']['loss']:.4g} &plusmn; {verdict['final']['loss_error']:.2g}" in head
    assert "simulated events" in head and "built_cost_eur" in head and "No simulation failed" in head
