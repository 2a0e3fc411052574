"""A user's simulation program in the loop: output read through the column map, failures and hangs handled."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from detopt.entry_points import parse_entry_point
from detopt.errors import ConfigError, DataError
from detopt.execution import SerialExecutor
from detopt.simulation.external import (
    ColumnMap,
    CommandSimulation,
    ExternalSimulationError,
    PythonSimulation,
    SimulationTimeout,
    check_template,
)

COLUMNS = ColumnMap(features=("edep",), targets=("energy",), context=("flag",))

WRITER = textwrap.dedent('''
    import json, sys
    import numpy as np
    design = json.load(open(sys.argv[1]))
    out, seed, n, fmt = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    rng = np.random.default_rng(seed)
    energy = rng.uniform(1, 10, n)
    cols = {"edep": energy * design["fraction"], "energy": energy, "flag": np.ones(n)}
    if fmt == "root":
        import uproot
        with uproot.recreate(out) as f:
            tree = f.mktree("events", {k: np.float64 for k in cols})
            tree.extend(cols)
    else:
        import pyarrow as pa, pyarrow.parquet as pq
        pq.write_table(pa.table(cols), out)
''')


def _script(tmp_path: Path, body: str, name: str = "prog.py") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_command_output_becomes_events_through_the_column_map(tmp_path: Path, fmt: str) -> None:
    script = _script(tmp_path, WRITER)
    sim = CommandSimulation(("{python}", str(script), "{design_json}", "{output}", "{seed}", "{n_events}", fmt), COLUMNS, fmt)
    events = sim({"fraction": 0.25}, 50, 3)
    assert len(events) == 50
    np.testing.assert_allclose(events.features[:, 0], 0.25 * events.target[:, 0])
    assert events.context.shape == (50, 1)
    again = sim({"fraction": 0.25}, 50, 3)
    np.testing.assert_array_equal(again.target, events.target)  # the seed reaches the program


def test_a_failing_program_reports_its_exit_code_and_stderr(tmp_path: Path) -> None:
    script = _script(tmp_path, "import sys\nprint('G4Exception: material Unobtainium not found', file=sys.stderr)\nsys.exit(7)\n")
    sim = CommandSimulation(("{python}", str(script), "{design_json}", "{output}"), COLUMNS)
    with pytest.raises(ExternalSimulationError, match=r"exited with code 7.*Unobtainium"):
        sim({"fraction": 1.0}, 10, 0)


def test_missing_columns_and_nan_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="edep"):
        COLUMNS.events({"energy": np.ones(3), "flag": np.ones(3)}, "prog")
    with pytest.raises(DataError, match="NaN"):
        COLUMNS.events({"edep": np.array([1.0, np.nan, 2.0]), "energy": np.ones(3), "flag": np.ones(3)}, "prog")


def _alive(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for left-over processes")
def test_a_hung_program_and_its_children_are_killed_at_the_timeout(tmp_path: Path) -> None:
    marker = f"detopt-hang-{uuid.uuid4().hex}"
    script = _script(tmp_path, textwrap.dedent(f'''
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{marker}"])
        time.sleep(120)
    '''))
    sim = CommandSimulation(("{python}", str(script), "{design_json}", "{output}", marker), COLUMNS, timeout_s=1.0)
    executor = SerialExecutor(retries=1)
    start = time.monotonic()
    with executor:
        [outcome] = executor.map(lambda task: sim(*task), [({"fraction": 1.0}, 10, 0)])
    elapsed = time.monotonic() - start
    assert not outcome.ok and outcome.attempts == 2  # counted and retried
    assert "timeout_s" in outcome.error and "killed" in outcome.error
    assert elapsed < 2 * (1.0 + 5.0), elapsed  # each attempt ends within timeout_s + 5 s
    time.sleep(0.2)
    assert _alive(marker) == [], "a process of the hung program survived"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for left-over processes")
def test_the_executor_timeout_also_stops_the_program(tmp_path: Path) -> None:
    marker = f"detopt-hang-{uuid.uuid4().hex}"
    script = _script(tmp_path, "import time\ntime.sleep(120)\n")
    sim = CommandSimulation(("{python}", str(script), "{design_json}", "{output}", marker), COLUMNS)
    executor = SerialExecutor(retries=0, timeout_s=1.0)
    start = time.monotonic()
    with executor:
        [outcome] = executor.map(lambda task: sim(*task), [({"fraction": 1.0}, 10, 0)])
    assert not outcome.ok and "timeout" in outcome.error
    assert time.monotonic() - start < 6.0
    time.sleep(0.2)
    assert _alive(marker) == []


def test_templates_must_use_known_placeholders_and_name_the_files() -> None:
    check_template(["prog", "{design_json}", "{output}"], "f")
    with pytest.raises(ConfigError, match=r"unknown placeholder \{desing\}"):
        check_template(["prog", "{desing}", "{output}"], "f")
    with pytest.raises(ConfigError, match=r"\{output\}"):
        check_template(["prog", "{design_json}"], "f")


def test_python_simulation_maps_returned_columns(tmp_path: Path) -> None:
    (tmp_path / "usersim_mod.py").write_text(
        "import numpy as np\n"
        "def simulate(design, n, seed):\n"
        "    e = np.random.default_rng(seed).uniform(1, 2, n)\n"
        "    return {'edep': e * design['fraction'], 'energy': e, 'flag': np.zeros(n)}\n"
    )
    sim = PythonSimulation(parse_entry_point("usersim_mod:simulate", "simulation.function", (str(tmp_path),)), COLUMNS)
    events = sim({"fraction": 0.5}, 20, 1)
    np.testing.assert_allclose(events.features[:, 0], 0.5 * events.target[:, 0])
    with pytest.raises(ConfigError, match="simulation.function"):
        parse_entry_point("usersim_mod:nothing", "simulation.function", (str(tmp_path),)).load()
    with pytest.raises(ConfigError, match="entry point"):
        parse_entry_point("not an entry point", "simulation.function")
