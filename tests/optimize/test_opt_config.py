"""The run configuration: clear errors before any work, and a tiny end-to-end calorimeter run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from detopt.errors import ConfigError
from detopt.optimize.cli_commands import (
    evaluate_command,
    optimize_command,
    report_command,
    status_command,
)
from detopt.optimize.run import prepare_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _tiny(tmp_path: Path, **changes: object) -> Path:
    config = yaml.safe_load((EXAMPLES / "quick.yaml").read_text())
    config.update(iterations=1, run_dir=str(tmp_path / "run"))
    config["simulation"].update(events_per_design=60, designs_per_iteration=3)
    config["execution"].update(backend="serial")
    config["reconstruction"].update(epochs=2)
    config["surrogate"].update(epochs=2, hidden=[16, 16], train_steps=10, ddim_steps=2)
    config["optimizer"].update(max_steps=5, events=50, global_designs=0)
    for key, value in changes.items():
        config[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name", ["quick.yaml", "sampling_calorimeter.yaml"])
def test_example_configs_validate(name: str, tmp_path: Path) -> None:
    prepared = prepare_run(EXAMPLES / name, run_dir=tmp_path / "run")
    assert prepared.problem.space.encoding_size == 18
    assert prepared.settings.events_per_design in (100, 200)


def test_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'") as info:
        prepare_run(_tiny(tmp_path, learning_rate=0.1))
    assert info.value.field == "learning_rate"


def test_start_value_outside_bounds(tmp_path: Path) -> None:
    config = yaml.safe_load(_tiny(tmp_path).read_text())
    config["design"]["parameters"][0]["bounds"] = [0.01, 30.0]  # absorber_0 starts at 40 cm
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"outside the bounds; allowed range is \[0.01, 30.0\]") as info:
        prepare_run(path)
    assert "absorber_0_thickness" in info.value.field


def test_negative_events(tmp_path: Path) -> None:
    config = yaml.safe_load(_tiny(tmp_path).read_text())
    config["simulation"]["events_per_design"] = -5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as info:
        prepare_run(path)
    assert info.value.field == "simulation.events_per_design"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_run_dir_as_user(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(ConfigError, match="cannot write"):
        prepare_run(_tiny(tmp_path), run_dir=locked / "run")


def test_unwritable_run_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write") as info:
        prepare_run(_tiny(tmp_path), run_dir=blocker / "run")
    assert info.value.field == "run_dir"
    assert not (blocker.parent / "run").exists()


def test_tiny_calorimeter_run_status_and_changed_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _tiny(tmp_path)
    assert optimize_command(config) == 0
    record = json.loads((tmp_path / "run" / "iterations" / "0000" / "record.json").read_text())
    assert record["n_events"] == 3 * 60
    assert record["monitors"]["length_cm"] == pytest.approx(75.0)
    out = capsys.readouterr().out
    assert "final design:" in out
    assert re.search(r"^    absorber_0: (Pb|Fe) \(P=[01]\.\d\d\), [\d.]+ cm$", out, re.M)  # every layer: material, P, thickness
    assert re.search(r"^    scintillator_2: (PbWO4|polystyrene) \(P=[01]\.\d\d\), [\d.]+ cm$", out, re.M)
    assert status_command(tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert "1 complete iteration" in out and "simulated events: 180" in out
    # the chosen material of every layer is named, with its probability, and thicknesses carry their unit
    assert re.search(r"^    absorber_0: (Pb|Fe) \(P=0\.\d\d\), [\d.]+ cm$", out, re.M)
    assert report_command(tmp_path / "run") == 0
    page = (tmp_path / "run" / "report" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 7  # the stack, figures 5, 6, 8, 9 and two of figure 4, embedded
    assert evaluate_command(tmp_path / "run", n_events=400) == 0
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["start"]["loss"] > 0 and evaluation["final"]["loss"] > 0
    assert evaluation["start"]["design"]["absorber_0_thickness"] == pytest.approx(40.0)
    assert evaluation["final"]["length_cm"] == pytest.approx(record["next_monitors"]["length_cm"], rel=1e-6)
    with pytest.raises(ConfigError, match="events"):
        evaluate_command(tmp_path / "run", n_events=5)
    changed = _tiny(tmp_path, seed=99)
    with pytest.raises(ConfigError, match="different configuration"):
        prepare_run(changed)


def test_a_misspelt_material_is_refused_before_any_work(tmp_path: Path) -> None:
    config = yaml.safe_load(_tiny(tmp_path).read_text())
    material = next(p for p in config["design"]["parameters"] if p["name"] == "absorber_0_material")
    material["categories"] = ["Pb", "Fee"]
    path = tmp_path / "misspelt.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"design\.parameters\[absorber_0_material\]\.categories: unknown material 'Fee'"):
        prepare_run(path)
    assert not (tmp_path / "run").exists()


def test_the_write_probe_never_writes_through_a_symlink(tmp_path: Path) -> None:
    from detopt.optimize.loop import check_run_dir

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".detopt-write-test").symlink_to(victim)
    check_run_dir(run)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in run.iterdir()) == [".detopt-write-test"]  # the probe left nothing behind


@pytest.mark.parametrize(("section", "key", "value"), [
    ("simulation", "events_per_design", 10**9),
    ("simulation", "designs_per_iteration", 10**5),
    ("simulation", "energy_range_gev", [1.0, 1e308]),
    ("optimizer", "global_designs", 10**7),
])
def test_sizes_that_would_exhaust_memory_are_refused_at_load(tmp_path: Path, section: str, key: str, value: object) -> None:
    config = yaml.safe_load(_tiny(tmp_path).read_text())
    config[section][key] = value
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        prepare_run(path)
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_more_events_than_fit_in_memory(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(ConfigError, match="must be a whole number from 100 to 10,000,000"):
        evaluate_command(tmp_path / "run", n_events=10**12)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml"]


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    text = _tiny(tmp_path).read_text()
    path = tmp_path / "twice.yaml"
    path.write_text(text + "seed: 5\n")
    with pytest.raises(ConfigError, match="key 'seed' given twice"):
        prepare_run(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text(text.replace("simulation:\n", "simulation:\n  events_per_design: 7\n", 1))
    with pytest.raises(ConfigError, match="key 'events_per_design' given twice"):
        prepare_run(nested)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["surrogate"].update(hidden=[0]), "surrogate.hidden: must be one or more layer widths"),
    (lambda c: c["detector"].update(transverse_size_cm=float("inf")), "detector.transverse_size_cm"),
    (lambda c: c["detector"]["layers"][4].update(name="absorber_1"), "detector.layers: duplicate layer names: absorber_1"),
])
def test_bad_values_are_refused_before_the_run_folder_is_written(tmp_path: Path, edit: Any, message: str) -> None:
    config = yaml.safe_load(_tiny(tmp_path).read_text())
    edit(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as info:
        prepare_run(path)
    assert message in str(info.value)
    assert not (tmp_path / "run").exists()  # fixing the value later starts a clean run
