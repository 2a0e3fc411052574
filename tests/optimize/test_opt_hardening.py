"""A run directory held by one driver, YAML alias bombs refused, a design with NaN output dropped like a crash."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from malformed import run_cli, snapshot, tiny_config  # noqa: E402

from detopt.errors import ConfigError  # noqa: E402
from detopt.optimize.run_directory import run_lock  # noqa: E402


def test_a_second_driver_on_a_locked_run_exits_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "run")))
    (tmp_path / "run").mkdir()
    with run_lock(tmp_path / "run"):  # the first driver
        before = snapshot([tmp_path / "run"])
        start = time.monotonic()
        result = run_cli(["optimize", str(path)])
        assert time.monotonic() - start < 5
        assert result.exit_code == 2 and "in use by another detopt process" in result.stderr
        assert "PID" in result.stderr
        assert snapshot([tmp_path / "run"]) == before
        with pytest.raises(ConfigError, match="in use"):
            with run_lock(tmp_path / "run"):
                pass
    assert run_cli(["optimize", str(path)]).exit_code == 0  # released


def test_a_yaml_alias_bomb_is_refused_in_under_a_second(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\n")
    start = time.monotonic()
    result = run_cli(["optimize", str(path)])
    assert time.monotonic() - start < 1.0
    assert result.exit_code == 2 and "aliases" in result.stderr and len(result.stderr) < 400


class NaNInOneDesign:
    """A simulation whose output is NaN for designs with a thick first absorber."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, design, n_events, seed):
        events = self.inner(design, n_events, seed)
        if design["absorber_0_thickness"] > 40.0:
            events.features[0, 0] = np.nan
        return events


def test_nan_output_drops_that_design_and_the_run_goes_on(tmp_path: Path) -> None:
    from detopt.optimize.config import validate_config
    from detopt.optimize.loop import run_loop
    from detopt.optimize.run import build_problem, loop_settings

    config = tiny_config(tmp_path / "run")
    config["simulation"]["designs_per_iteration"] = 8
    parsed = validate_config(config)
    problem = build_problem(parsed)
    problem.simulate = NaNInOneDesign(problem.simulate)
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        records = run_loop(problem, loop_settings(parsed), tmp_path / "run", 1)
    assert records[0]["dropped"], "no design was dropped"
    faults = (tmp_path / "run" / "faults.jsonl").read_text()
    assert "NaN or infinite features" in faults
    assert np.isfinite(records[0]["reconstruction_loss"])


def test_no_write_goes_through_a_symbolic_link_out_of_the_run(tmp_path: Path) -> None:
    from detopt.optimize.run_directory import RunDirectory

    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "faults.jsonl").symlink_to(outside)
    with pytest.raises(ConfigError, match="symbolic link"):
        RunDirectory(run).append_faults([{"error": "x"}])
    assert outside.read_text() == "precious\n"


def test_report_refuses_a_report_folder_that_links_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "run")))
    assert run_cli(["optimize", str(path)]).exit_code == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (tmp_path / "run" / "report").symlink_to(foreign)
    result = run_cli(["report", str(tmp_path / "run")])
    assert result.exit_code == 2 and "symbolic link" in result.stderr
    assert list(foreign.iterdir()) == []


def test_the_local_scheduler_and_dashboard_listen_on_loopback_only() -> None:
    from detopt.execution import DaskExecutor

    with DaskExecutor(n_workers=1) as executor:
        client = executor._client
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert "127.0.0.1" in client.dashboard_link
        for worker in client.scheduler_info()["workers"]:
            assert worker.startswith("tcp://127.0.0.1:")


def test_a_changed_file_of_the_last_iteration_stops_the_resume(tmp_path: Path) -> None:
    """A swapped design_next.json (or any file done.json recorded) is named; nothing is written."""
    import json

    path = tmp_path / "config.yaml"
    config = tiny_config(tmp_path / "run")
    path.write_text(yaml.safe_dump(config))
    assert run_cli(["optimize", str(path)]).exit_code == 0
    done = json.loads((tmp_path / "run" / "iterations" / "0000" / "done.json").read_text())
    assert "design_next.json" in done["sha256"] and "events.parquet" in done["sha256"]
    target = tmp_path / "run" / "iterations" / "0000" / "design_next.json"
    target.write_text(target.read_text().replace("40.", "41.", 1) if "40." in target.read_text() else target.read_text() + " ")
    config["iterations"] = 2
    path.write_text(yaml.safe_dump(config))
    before = snapshot([tmp_path / "run"])
    result = run_cli(["optimize", str(path)])
    assert result.exit_code == 2 and "design_next.json" in result.stderr and "changed since iteration 0" in result.stderr
    after = snapshot([tmp_path / "run"])
    assert {k: v for k, v in after.items() if not k.endswith(("config.yaml", "run.json"))} == \
        {k: v for k, v in before.items() if not k.endswith(("config.yaml", "run.json"))}


def test_report_on_a_read_only_run_is_one_line(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "run")))
    assert run_cli(["optimize", str(path)]).exit_code == 0
    (tmp_path / "run").chmod(0o555)
    try:
        result = run_cli(["report", str(tmp_path / "run")])
        assert result.exit_code == 2 and "-o PATH" in result.stderr
        assert run_cli(["report", str(tmp_path / "run"), "-o", str(tmp_path / "elsewhere")]).exit_code == 0
    finally:
        (tmp_path / "run").chmod(0o755)
