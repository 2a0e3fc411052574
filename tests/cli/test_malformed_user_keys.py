"""Property tests over the keys of a user's own detector (simulation program or function, columns, loss,
reconstruction, constraints, materials, import path): one ``error:`` line naming the key, exit 2, no
traceback, no new file."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # malformed.py (pytest runs with --import-mode=importlib)

from malformed import (  # noqa: E402
    REPO,
    assert_clean_cli_error,
    bad_choice,
    bad_positive_float,
    junk_containers,
    junk_text,
    run_cli,
    set_path,
    snapshot,
    write_yaml,
)

from detopt.errors import DetoptError  # noqa: E402

TRACKER = REPO / "examples" / "tracker"
EXTERNAL = REPO / "examples" / "external_program"


def _base(kind: str, run_dir: Path) -> dict[str, Any]:
    folder = TRACKER if kind == "python" else EXTERNAL
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config.update(iterations=1, run_dir=str(run_dir))
    if kind == "python":
        config["python_path"] = [str(TRACKER)]
    else:
        config["simulation"]["command"]["working_dir"] = str(EXTERNAL)
    config["execution"] = {"backend": "serial"}
    return config


entry_points = st.one_of(
    junk_text, st.integers(), junk_containers,
    st.sampled_from(["nosuch_module_xyz:f", "tracker:no_such_function", "tracker", ":f", "a b:c", "tracker:P_RANGE_GEV"]),
)
bad_columns = st.one_of(
    st.just([]), junk_text, st.lists(st.integers(), min_size=1, max_size=2), st.just(["", "x"]), st.just(["a", "a"]),
)
bad_constraint_value = st.one_of(junk_text, st.just(float("nan")), st.just(float("inf")), junk_containers)

#: (base, dotted key) -> values it must refuse; the message must name the key
USER_FIELDS: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("python", "simulation.function"): entry_points,
    ("python", "simulation.columns.features"): bad_columns,
    ("python", "simulation.columns.targets"): bad_columns,
    ("python", "simulation.columns.context"): st.one_of(junk_text, st.lists(st.integers(), min_size=1, max_size=2)),
    ("python", "loss"): st.one_of(bad_choice(["energy_resolution", "relative_resolution", "mse"]), entry_points),
    ("python", "reconstruction.function"): entry_points,
    ("python", "python_path"): st.one_of(st.lists(st.sampled_from(["/no/such/folder", "missing_dir"]), min_size=1, max_size=2), junk_text),
    ("python", "penalties.custom"): st.one_of(
        st.builds(lambda v: [{"name": "cost_meur", "function": "tracker:cost_meur", "limit": v}], bad_constraint_value),
        st.builds(lambda v: [{"name": "cost_meur", "function": "tracker:cost_meur", "limit": 3.0, "weight": v}], bad_positive_float(strict=False)),
        st.builds(lambda v: [{"name": "cost_meur", "function": v, "limit": 3.0}], entry_points),
        st.builds(lambda v: [{"name": v, "function": "tracker:cost_meur", "limit": 3.0}], st.sampled_from(["", "1abc", "a-b", "cost_eur"])),
        junk_text,
    ),
    ("python", "penalties.linear"): st.one_of(
        st.builds(lambda k: [{"name": "size", "coefficients": {k: 1.0}, "limit": 1.0}], st.sampled_from(["sensor", "nothing", "L"])),
        st.builds(lambda v: [{"name": "size", "coefficients": {"lever_arm_m": v}, "limit": 1.0}], bad_constraint_value),
        st.builds(lambda v: [{"name": "size", "coefficients": {"lever_arm_m": 1.0}, "limit": v}], bad_constraint_value),
        st.just([{"name": "size", "coefficients": {}, "limit": 1.0}]),
    ),
    ("python", "materials"): st.sampled_from(["materials.yaml", "/no/such.yaml"]),
    ("python", "detector"): st.just({"layers": [{"name": "a", "active": True}]}),
    ("command", "simulation.command.run"): st.one_of(
        st.sampled_from([
            "{python} simulate_calorimeter.py --design {design_json}",
            "{python} simulate_calorimeter.py {design} {output}",
            "no_such_program_xyz {design_json} {output}",
            "./missing.py {design_json} {output}",
            "'unclosed {design_json} {output}",
            "",
            "{python} x.py {design_json} {output} {0}",
        ]),
        st.lists(st.integers(), min_size=1, max_size=2),
    ),
    ("command", "simulation.command.format"): bad_choice(["root", "parquet"]),
    ("command", "simulation.command.working_dir"): st.sampled_from(["/no/such/folder", "missing_dir"]),
    ("command", "simulation.command"): st.one_of(st.just(None), junk_text),
    ("command", "simulation.columns"): st.one_of(st.just(None), junk_text),
    ("command", "penalties.cost.quantity"): bad_choice(["expected", "built"]),
    ("command", "simulation.function"): st.just("tracker:simulate"),
}


def _valid(config: dict[str, Any], base: Path) -> bool:
    from detopt.optimize.config import validate_config
    from detopt.optimize.run import build_problem

    try:
        build_problem(validate_config(config), base)
    except DetoptError:
        return False
    except Exception:
        return False
    return True


def test_user_detector_keys_are_refused_with_one_line_naming_them() -> None:
    tried: set[str] = set()

    @settings(max_examples=80, deadline=None, database=None, phases=(Phase.explicit, Phase.generate),
              suppress_health_check=list(HealthCheck))
    @seed(13)
    @given(key=st.sampled_from(sorted(USER_FIELDS)), data=st.data())
    def check(key: tuple[str, str], data: st.DataObject) -> None:
        kind, field = key
        value = data.draw(USER_FIELDS[key], label=field)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = set_path(_base(kind, folder / "run"), field, value)
            assume(not _valid(config, folder))
            path = write_yaml(folder / "config.yaml", config)
            before = snapshot([folder])
            line = assert_clean_cli_error(run_cli(["optimize", str(path)]), before=before, folders=[folder])
            named = field.split(".")[0] if field in ("penalties.custom", "penalties.linear") else field
            assert named in line, (field, value, line)
        tried.add(f"{kind}:{field}={value!r}")

    check()
    assert len(tried) >= 40
    assert len({t.split("=")[0] for t in tried}) >= len(USER_FIELDS) - 2  # nearly every key was tried
