"""The ``detopt`` command: materials, simulate, one-line errors for bad input, fast start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner, Result

from detopt.cli.main import app
from detopt.cli.runner import simulate_in_chunks
from detopt.cli.summary import summarize_layers, summarize_particles
from detopt.examples import aido_calorimeter
from detopt.examples.aido import AIDO_LAYER_NAMES
from detopt.simulation import EventBatch, FastShowerSimulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "aido_start.yaml"

runner = CliRunner()


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args))


# ------------------------------------------------------------------------- version, materials


def test_version() -> None:
    from detopt import __version__

    result = _run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"detopt {__version__}"


def test_materials_lists_pdg_values_and_flags_estimates() -> None:
    result = _run("materials")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    # PDG: X0(PbWO4) = 0.8903 cm, lambda_I = 20.27 cm, R_M = 1.959 cm (1.958 from eq. 34.37); X0(Pb) = 0.5612 cm.
    assert "0.8903" in rows["PbWO4"] and "20.27" in rows["PbWO4"] and "1.958" in rows["PbWO4"]
    assert "0.5612" in rows["Pb"] and "41.31" in rows["polystyrene"]
    assert len(rows) == 11
    # lambda_pi of PbWO4 is an estimate (lambda_I x 1.15): marked and explained in the footnote.
    assert "23.31*" in rows["PbWO4"]
    assert "PbWO4 lambda_pi: lambda_I x 1.15" in result.stdout


# ---------------------------------------------------------------------------------- simulate


def test_simulate_writes_a_reproducible_file(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    for path, seed in ((first, "3"), (second, "3"), (other, "4")):
        result = _run("simulate", "--events", "2000", "--seed", seed, "-o", str(path))
        assert result.exit_code == 0, result.output
    a, b, c = (EventBatch.from_parquet(p) for p in (first, second, other))
    assert len(a) == 2000
    assert a.metadata["seed"] == 3 and c.metadata["seed"] == 4
    assert a.layer_names == AIDO_LAYER_NAMES and a.active == (False, True) * 3
    np.testing.assert_array_equal(a.deposits, b.deposits)
    np.testing.assert_array_equal(a.energy, b.energy)
    assert not np.array_equal(a.deposits, c.deposits)
    assert a.metadata["design"]["scintillator_0_material"] == "PbWO4"
    assert a.metadata["detector"]["layers"][0] == {
        "name": "absorber_0", "material": "Pb", "thickness_cm": 40.0, "active": False,
    }
    assert set(a.particle_names) == {"gamma", "pi+"} and a.energy.min() >= 1.0 and a.energy.max() <= 20.0
    # The summary names every layer and both particles.
    out = _run("simulate", "--events", "2000", "--seed", "3").stdout
    for name in (*AIDO_LAYER_NAMES, "gamma", "pi+", "containment"):
        assert name in out


def test_design_file_simulates_the_same_events_as_the_builtin_example(tmp_path: Path) -> None:
    builtin, from_file = tmp_path / "builtin.parquet", tmp_path / "file.parquet"
    assert _run("simulate", "-n", "1500", "-s", "7", "-o", str(builtin)).exit_code == 0
    result = _run("simulate", "--design", str(EXAMPLE), "-n", "1500", "-s", "7", "-o", str(from_file))
    assert result.exit_code == 0, result.output
    a, b = EventBatch.from_parquet(builtin), EventBatch.from_parquet(from_file)
    np.testing.assert_array_equal(a.deposits, b.deposits)
    assert b.metadata["design_file"] == str(EXAMPLE)


def test_design_file_materials_and_options_reach_the_simulation(tmp_path: Path) -> None:
    """Favouring Fe and polystyrene in the file gives an Fe/polystyrene detector; --voxels, --energy, --particles apply."""
    data = yaml.safe_load(EXAMPLE.read_text())
    for entry in data["parameters"]:
        if entry["name"].endswith("_material"):
            entry["probabilities"] = [0.2, 0.8]
    design = tmp_path / "fe.yaml"
    design.write_text(yaml.safe_dump(data))
    out = tmp_path / "fe.parquet"
    args = ("simulate", "-d", str(design), "-n", "400", "-p", "e-", "-e", "5", "--voxels", "6x4", "-o", str(out))
    result = _run(*args)
    assert result.exit_code == 0, result.output
    batch = EventBatch.from_parquet(out)
    assert [layer["material"] for layer in batch.metadata["detector"]["layers"]] == ["Fe", "polystyrene"] * 3
    assert set(batch.particle_names) == {"e-"}
    np.testing.assert_array_equal(batch.energy, 5.0)
    assert batch.voxels is not None and batch.voxels.shape == (400, 6, 4)
    # The voxel map holds the deposits: its sum equals the summed layer deposits per event (float32 map).
    np.testing.assert_allclose(batch.voxels.sum(axis=(1, 2)), batch.total_deposit, rtol=1e-4)


def test_chunks_depend_only_on_the_seed() -> None:
    """Chunk k has the same events whatever the total: the first 20 of 25 events equal a run of 20."""
    det, sim = aido_calorimeter(), FastShowerSimulator()
    short = simulate_in_chunks(sim, det, 20, ("gamma", "pi+"), (1.0, 20.0), 11, chunk_events=10)
    long = simulate_in_chunks(sim, det, 25, ("gamma", "pi+"), (1.0, 20.0), 11, chunk_events=10)
    np.testing.assert_array_equal(long.deposits[:20], short.deposits)
    assert len(long) == 25 and long.metadata["seed"] == 11 and long.metadata["chunk_events"] == 10


def test_summary_containment_of_the_aido_start() -> None:
    """123.8 X0 and 3.65 lambda_pi: photons are contained (lateral leakage only, R_M ~ 1.6-2 cm << 25 cm), and the
    thick front Pb absorber takes almost all of it, so the scintillators see ~nothing. Pions lose invisible energy
    and punch through in exp(-3.65) = 2.6% of the events, so far less is deposited."""
    det = aido_calorimeter()
    batch = FastShowerSimulator().simulate(det, 4000, ("gamma", "pi+"), (1.0, 20.0), 5)
    layers = summarize_layers(batch, det)
    assert [row.name for row in layers] == list(AIDO_LAYER_NAMES)
    assert layers[0].mean_gev > 0.75 * sum(row.mean_gev for row in layers)  # the 71 X0 front absorber
    rows = {row.particle: row for row in summarize_particles(batch)}
    assert rows["gamma"].n_events + rows["pi+"].n_events == 4000
    assert rows["gamma"].containment > 0.97
    assert rows["gamma"].active_fraction < 1e-3
    assert 0.4 < rows["pi+"].containment < 0.9
    assert rows["pi+"].active_fraction > 10 * rows["gamma"].active_fraction


# --------------------------------------------------------------------------------- bad input


def _write_design(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    edit(data)
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _param(data: dict, name: str) -> dict:
    return next(p for p in data["parameters"] if p["name"] == name)


def _negative_thickness(data: dict) -> None:
    _param(data, "absorber_0_thickness")["value"] = -1.0


def _negative_bound(data: dict) -> None:
    _param(data, "absorber_0_thickness").update(value=5.0, bounds=[-10.0, 200.0])


def _zero_fixed_thickness(data: dict) -> None:
    data["parameters"] = [p for p in data["parameters"] if p["name"] != "absorber_0_thickness"]
    data["detector"]["layers"][0]["thickness_cm"] = 0.0


def _unknown_material(data: dict) -> None:
    _param(data, "scintillator_0_material")["categories"] = ["PbWO4", "kryptonite"]


def _unknown_fixed_material(data: dict) -> None:
    data["parameters"] = [p for p in data["parameters"] if p["name"] != "absorber_0_material"]
    data["detector"]["layers"][0]["material"] = "Unobtainium"


def _unknown_top_level_key(data: dict) -> None:
    data["colour"] = "red"


def _unknown_layer_key(data: dict) -> None:
    data["detector"]["layers"][0]["colour"] = "red"


def _unused_parameter(data: dict) -> None:
    data["parameters"].append({"name": "absorber_9_thickness", "value": 1.0, "bounds": [0.1, 2.0], "sigma": 0.1})


DESIGN_ERRORS = [
    (_negative_thickness, "parameters[absorber_0_thickness].value", "allowed range"),
    (_negative_bound, "parameters[absorber_0_thickness].bounds", "> 0"),
    (_zero_fixed_thickness, "detector.layers[absorber_0].thickness_cm", "greater than 0"),
    (_unknown_material, "parameters[scintillator_0_material].categories", "allowed: BGO"),
    (_unknown_fixed_material, "detector.layers[absorber_0].material", "allowed: BGO"),
    (_unknown_top_level_key, "colour", "allowed: detector, version, parameters"),
    (_unknown_layer_key, "detector.layers[absorber_0].colour", "allowed keys: name, active"),
    (_unused_parameter, "parameters[absorber_9_thickness]", "not read by any layer"),
]

OPTION_ERRORS = [
    (["--events", "0"], "--events", "> 0"),
    (["--events", "-3"], "--events", "> 0"),
    (["--events", "1000000000"], "--events", "<= 10,000,000"),
    (["--energy", "1e308"], "--energy", "MAX <= 100000"),
    (["--events", "abc"], "--events", "integer"),
    (["--energy", "5:1"], "--energy", "0 < MIN <= MAX"),
    (["--energy", "abc"], "--energy", "0 < MIN <= MAX"),
    (["--energy", "0:10"], "--energy", "0 < MIN <= MAX"),
    (["--energy", "-2"], "--energy", "0 < MIN <= MAX"),
    (["--energy", "1:2:3"], "--energy", "0 < MIN <= MAX"),
    (["--particles", "muon"], "--particles", "allowed: gamma, e-, pi+"),
    (["--particles", ","], "--particles", "allowed: gamma, e-, pi+"),
    (["--seed", "-1"], "--seed", ">= 0"),
    (["--voxels", "24"], "--voxels", "24x16"),
    (["--voxels", "0x16"], "--voxels", "from 1 to 1000"),
    (["--bogus"], "--bogus", "No such option"),
]


def _assert_one_line_error(result: Result, field: str, allowed: str, folder: Path) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {field}: "), lines[0]
    assert allowed in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not list(folder.glob("*.parquet*")) and not list(folder.glob(".*.tmp")), list(folder.iterdir())


@pytest.mark.parametrize(
    ("args", "field", "allowed"), OPTION_ERRORS, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_bad_option_is_one_line_exit_2_and_no_file(tmp_path: Path, args: list[str], field: str, allowed: str) -> None:
    out = tmp_path / "out.parquet"
    result = _run("simulate", "-n", "100", *args, "-o", str(out))
    _assert_one_line_error(result, field, allowed, tmp_path)


@pytest.mark.parametrize(("edit", "field", "allowed"), DESIGN_ERRORS, ids=lambda v: getattr(v, "__name__", None))
def test_bad_design_file_is_one_line_exit_2_and_no_file(
    tmp_path: Path, edit: Callable[[dict], None], field: str, allowed: str
) -> None:
    design = _write_design(tmp_path, edit)
    result = _run("simulate", "-n", "100", "--design", str(design), "-o", str(tmp_path / "out.parquet"))
    _assert_one_line_error(result, field, allowed, tmp_path)
    assert str(design) in result.stderr  # the message names the file


def test_malformed_and_missing_design_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [\n  - {name: x\n")
    result = _run("simulate", "--design", str(bad), "-o", str(tmp_path / "out.parquet"))
    _assert_one_line_error(result, str(bad), "malformed YAML", tmp_path)
    missing = tmp_path / "missing.yaml"
    result = _run("simulate", "--design", str(missing), "-o", str(tmp_path / "out.parquet"))
    _assert_one_line_error(result, str(missing), "not found", tmp_path)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"parameters": [}')
    result = _run("simulate", "--design", str(bad_json), "-o", str(tmp_path / "out.parquet"))
    _assert_one_line_error(result, str(bad_json), "malformed JSON", tmp_path)


def test_unwritable_output_is_one_line_exit_2_and_no_file(tmp_path: Path) -> None:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a folder")
    for target, allowed in (
        (a_file / "out.parquet", "is not a directory"),
        (tmp_path, "is a directory"),
        (tmp_path / "out.csv", "ending in .parquet"),
    ):
        result = _run("simulate", "-n", "100", "-o", str(target))
        _assert_one_line_error(result, "--output", allowed, tmp_path)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_write_failure_after_simulating_is_one_line_and_leaves_nothing() -> None:
    """/proc accepts no new files even for root: the write fails after the simulation, atomically."""
    result = _run("simulate", "-n", "100", "-o", "/proc/detopt-test.parquet")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --output: cannot write '/proc/detopt-test.parquet'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not Path("/proc/detopt-test.parquet").exists()


def test_console_script_prints_one_line_to_stderr(tmp_path: Path) -> None:
    """The installed ``detopt`` script (not only CliRunner) gives one line and status 2."""
    script = Path(sys.executable).with_name("detopt")
    if not script.exists():
        pytest.skip("detopt console script not installed next to the interpreter")
    proc = subprocess.run(
        [str(script), "simulate", "--energy", "5:1", "-o", str(tmp_path / "x.parquet")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: --energy: must be MIN:MAX in GeV with 0 < MIN <= MAX <= 100000 (e.g. 1:20), or one energy in (0, 100000], got '5:1'"
    ]
    assert proc.stdout == "" and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------- fast start

_PROBE = """
import json, sys, time
start = time.perf_counter()
from detopt.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "seconds": time.perf_counter() - start,
                  "heavy": sorted(m for m in ("torch", "dask", "distributed", "scipy", "pyarrow") if m in sys.modules)}))
"""


def _probe(*args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    wall = time.perf_counter() - start
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    """``detopt --help`` (interpreter start included) well under 1.5 s: no torch, dask, scipy or pyarrow import."""
    walls = []
    for _ in range(3):
        report, wall = _probe("--help")
        assert report["code"] == 0
        assert report["heavy"] == []
        walls.append(wall)
    assert min(walls) < 1.5, walls


def test_materials_imports_no_torch_or_dask() -> None:
    report, _ = _probe("materials")
    assert report["code"] == 0
    assert report["heavy"] == []
