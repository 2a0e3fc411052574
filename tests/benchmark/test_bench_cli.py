"""``detopt benchmark``: writes the results, the table and the figure; one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from detopt.cli.main import app

runner = CliRunner()


def test_benchmark_ci_writes_json_markdown_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = runner.invoke(app, ["benchmark", "ci", "--out", str(out), "--seeds", "1", "--methods", "random,cma-es",
                                 "--budget", "1200"])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "optbench_ci.json").read_text())
    assert [r["events_spent"] for r in document["runs"]] == [1200, 1200]
    table = (out / "optbench_ci.md").read_text()
    assert "| bowl2 | random |" in table and "| bowl2 | cma-es |" in table
    assert (out / "optbench_ci.png").stat().st_size > 10_000
    assert not (out / "optbench_ci.partial.json").exists()
    (out / "optbench_ci.md").unlink()
    again = runner.invoke(app, ["benchmark", "ci", "--out", str(out), "--report-only"])
    assert again.exit_code == 0 and (out / "optbench_ci.md").read_text() == table


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, field in (
        (["benchmark", "mars"], "suite"),
        (["benchmark", "ci", "--budget", "1000"], "budget"),
        (["benchmark", "ci", "--methods", "bfgs"], "methods"),
        (["benchmark", "ci", "--out", str(tmp_path / "none"), "--report-only"], "--report-only"),
        (["benchmark", "ci", "--out", str(tmp_path / "out"), "--name", "../escaped"], "--name"),
        (["benchmark", "ci", "--out", str(tmp_path / "out"), "--name", str(tmp_path / "absolute")], "--name"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written anywhere
