"""Property tests (hypothesis) over malformed input at every entry point: one clear error, no traceback, no file.

Entry points: the run configuration (wrong types, out-of-range values, unknown keys, broken YAML,
binary junk), design files, event files (Parquet and ROOT: missing columns, wrong dtypes, NaN,
truncated files), saved models (surrogate, reconstruction, design optimizer: corrupt
safetensors, wrong JSON), run directories read by ``status``/``report``/``evaluate``, and the
arguments of every ``detopt`` command. Each test counts the distinct inputs it really tried and
asserts a floor, so the default run checks more than 200 generated malformed inputs.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # malformed.py (pytest runs with --import-mode=importlib)

from malformed import (  # noqa: E402
    CONFIG_FIELDS,
    REPO,
    assert_clean_cli_error,
    junk_text,
    run_cli,
    set_path,
    snapshot,
    tiny_config,
    write_yaml,
)

from detopt.errors import DataError, DetoptError  # noqa: E402
from detopt.safe_yaml import UniqueKeyLoader  # noqa: E402


def examples(n: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``n`` examples from a fixed seed (the same inputs on every machine and checkout path: ``derandomize``
    would derive the seed from the test's location), no example database, no deadline, no shrinking (a
    failure prints the drawn input as it is; shrinking would cost minutes of CLI calls)."""

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        return seed(20261122)(settings(
            max_examples=n, deadline=None, database=None, derandomize=False, phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
        )(test))

    return decorate


def _valid_config(data: Any, base: Path) -> bool:
    """Whether the configuration passes every check ``detopt optimize`` makes before running."""
    from detopt.optimize.config import validate_config
    from detopt.optimize.run import build_problem, loop_settings

    if not isinstance(data, dict):
        return False
    try:
        config = validate_config(data)
        build_problem(config, base)
        loop_settings(config)
    except DetoptError:
        return False
    return True


# ----------------------------------------------------------------------------- run configuration
def test_config_wrong_types_and_out_of_range_values() -> None:
    tried: set[str] = set()

    @examples(60)
    @given(field=st.sampled_from(sorted(CONFIG_FIELDS)), data=st.data())
    def check(field: str, data: st.DataObject) -> None:
        value = data.draw(CONFIG_FIELDS[field], label=field)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = set_path(tiny_config(folder / "run"), field, value)
            assume(not _valid_config(config, folder))
            path = write_yaml(folder / "config.yaml", config)
            before = snapshot([folder])
            line = assert_clean_cli_error(run_cli(["optimize", str(path)]), before=before, folders=[folder])
            assert field in line, (field, value, line)  # the message names the field
        tried.add(f"{field}={value!r}")

    check()
    assert len(tried) >= 50


IDENTIFIERS = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


def test_config_unknown_keys_are_named() -> None:
    tried: set[str] = set()
    sections = ["", "simulation", "execution", "optimizer", "reconstruction", "surrogate", "penalties.length"]

    @examples(40)
    @given(section=st.sampled_from(sections), key=IDENTIFIERS, value=st.integers())
    def check(section: str, key: str, value: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = tiny_config(folder / "run")
            node = config
            for part in filter(None, section.split(".")):
                node = node[part]
            assume(key not in node)
            path = write_yaml(folder / "config.yaml", set_path(config, f"{section}.{key}" if section else key, value))
            assume(not _valid_config(yaml.safe_load(path.read_text()), folder))
            line = assert_clean_cli_error(run_cli(["optimize", str(path)]), before=snapshot([folder]), folders=[folder])
            assert f"unknown key '{key}'" in line, line
        tried.add(f"{section}.{key}")

    check()
    assert len(tried) >= 25


def _corrupt_text(text: str, data: st.DataObject) -> bytes:
    """Broken YAML: truncated, a structural character inserted, or binary junk."""
    how = data.draw(st.sampled_from(["truncate", "insert", "binary", "junk_prefix"]))
    if how == "truncate":
        cut = data.draw(st.integers(1, len(text) - 1))
        return text[:cut].encode()
    if how == "insert":
        at = data.draw(st.integers(0, len(text)))
        piece = data.draw(st.sampled_from(["[", "{", "]", "}", ": :", "\t", "- ", "&a", "*b", "!!python/object:os.system", '"', "'"]))
        return (text[:at] + piece + text[at:]).encode()
    if how == "binary":
        return data.draw(st.binary(min_size=1, max_size=300))
    return data.draw(st.binary(min_size=1, max_size=20)) + text.encode()


def test_config_broken_yaml_and_binary_junk() -> None:
    tried: set[bytes] = set()

    @examples(40)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            text = yaml.safe_dump(tiny_config(folder / "run"), sort_keys=False)
            blob = _corrupt_text(text, data)
            try:
                parsed = yaml.load(blob.decode("utf-8"), Loader=UniqueKeyLoader)  # the loader detopt uses
            except (UnicodeDecodeError, yaml.YAMLError):
                parsed = None
            assume(not _valid_config(parsed, folder))
            path = folder / "config.yaml"
            path.write_bytes(blob)
            result = run_cli(["optimize", str(path)])
            assert_clean_cli_error(result, before=snapshot([folder]), folders=[folder])
        tried.add(blob)

    check()
    assert len(tried) >= 30


# ------------------------------------------------------------------------------------ design files
DESIGN = yaml.safe_load((REPO / "examples" / "aido_start.yaml").read_text())


def _design_mutation(data: st.DataObject) -> tuple[str, Any]:
    """A design-file mapping with one thing wrong, and the suffix to write it with."""
    design = json.loads(json.dumps(DESIGN))
    params = design["parameters"]
    kind = data.draw(st.sampled_from(["value", "bounds", "sigma", "categories", "probabilities", "unknown", "layers", "not_a_mapping"]))
    continuous = [p for p in params if "categories" not in p]
    discrete = [p for p in params if "categories" in p]
    if kind == "value":
        data.draw(st.sampled_from(continuous))["value"] = data.draw(st.one_of(st.floats(max_value=0.0), junk_text, st.just(1e9)))
    elif kind == "bounds":
        data.draw(st.sampled_from(continuous))["bounds"] = data.draw(
            st.one_of(st.lists(st.floats(allow_nan=True), max_size=1), junk_text, st.tuples(st.just(50.0), st.just(1.0)).map(list))
        )
    elif kind == "sigma":
        data.draw(st.sampled_from(continuous))["sigma"] = data.draw(st.one_of(st.floats(max_value=0.0), junk_text))
    elif kind == "categories":
        data.draw(st.sampled_from(discrete))["categories"] = data.draw(
            st.one_of(st.lists(st.sampled_from(["kryptonite", "Unobtainium", ""]), min_size=2, max_size=2), st.just([]), junk_text)
        )
    elif kind == "probabilities":
        data.draw(st.sampled_from(discrete))["probabilities"] = data.draw(
            st.one_of(st.lists(st.floats(min_value=-1.0, max_value=-0.01), min_size=2, max_size=2), st.just([0.9, 0.9]), junk_text)
        )
    elif kind == "unknown":
        key = data.draw(IDENTIFIERS.filter(lambda k: k not in ("detector", "version", "parameters")))
        design[key] = 1
    elif kind == "layers":
        design["detector"]["layers"] = data.draw(st.one_of(st.just([]), junk_text, st.lists(st.integers(), min_size=1, max_size=2)))
    else:
        design = data.draw(st.one_of(st.lists(st.integers(), max_size=2), st.integers(), junk_text))
    return data.draw(st.sampled_from([".yaml", ".json"])), design


def test_design_files_bad_values_keys_and_junk() -> None:
    from detopt.examples import load_design_file

    tried: set[str] = set()

    @examples(40)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if data.draw(st.booleans()):
                suffix, design = _design_mutation(data)
                text = json.dumps(design) if suffix == ".json" else yaml.safe_dump(design, allow_unicode=True)
                blob = text.encode()
            else:
                suffix = data.draw(st.sampled_from([".yaml", ".json", ".txt"]))
                blob = _corrupt_text(yaml.safe_dump(DESIGN) if suffix != ".json" else json.dumps(DESIGN), data)
            path = folder / f"design{suffix}"
            path.write_bytes(blob)
            try:
                load_design_file(path)
                valid = True
            except DetoptError:
                valid = False
            assume(not valid)
            before = snapshot([folder])
            result = run_cli(["simulate", "-n", "10", "--design", str(path), "-o", str(folder / "out.parquet")])
            assert_clean_cli_error(result, before=before, folders=[folder])
        tried.add(blob.hex())

    check()
    assert len(tried) >= 30


# ------------------------------------------------------------------------------------- event files
@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detopt.examples import aido_calorimeter
    from detopt.simulation import FastShowerSimulator

    batch = FastShowerSimulator().simulate(aido_calorimeter(), 20, ("gamma", "pi+"), (1.0, 20.0), 1)
    return batch.to_parquet(tmp_path_factory.mktemp("events") / "events.parquet")


def _mutated_table(table: Any, data: st.DataObject) -> tuple[Any, str]:
    """The table with one column dropped, retyped or poisoned with NaN; returns it and the column name."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [n for n in table.column_names if n != "first_interaction_cm"]
    column = data.draw(st.sampled_from(names))
    how = data.draw(st.sampled_from(["drop", "string", "nan", "inf"] if column != "particle" else ["drop", "int", "unknown"]))
    i = table.column_names.index(column)
    if how == "drop":
        return table.remove_column(i), column
    if how == "string":
        return table.set_column(i, column, pc.cast(table.column(column), pa.string())), column
    if how == "int":
        return table.set_column(i, column, pa.array(np.arange(table.num_rows))), column
    if how == "unknown":
        return table.set_column(i, column, pa.array(["muon"] * table.num_rows)), column
    values = table.column(column).to_numpy(zero_copy_only=False).copy()
    row = data.draw(st.integers(0, len(values) - 1))
    values[row] = np.nan if how == "nan" else np.inf
    return table.set_column(i, column, pa.array(values)), column


def test_event_files_missing_columns_wrong_dtypes_nan_and_truncation(event_file: Path) -> None:
    import pyarrow.parquet as pq

    from detopt.simulation import EventBatch

    table = pq.read_table(event_file)
    raw = event_file.read_bytes()
    tried: set[str] = set()

    @examples(40)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bad.parquet"
            how = data.draw(st.sampled_from(["column", "column", "truncate", "junk", "metadata"]))
            named = str(path)
            if how == "column":
                bad, named = _mutated_table(table, data)
                pq.write_table(bad, path)
            elif how == "truncate":
                # the first half: a cut near the end can leave every byte uproot needs (the file still reads)
                path.write_bytes(raw[: data.draw(st.integers(0, len(raw) // 2))])
            elif how == "junk":
                path.write_bytes(data.draw(st.binary(max_size=200)))
            else:
                meta = data.draw(st.one_of(st.binary(max_size=30), st.just(b'{"active": [true]}'), st.just(b"[]")))
                pq.write_table(table.replace_schema_metadata({b"detopt": meta}), path)
            with pytest.raises(DataError) as info:
                EventBatch.from_parquet(path)
            assert str(path) in str(info.value) and named in str(info.value), str(info.value)
            tried.add(path.read_bytes().hex()[:4000] + how)

    check()
    assert len(tried) >= 30


def test_root_event_files_missing_branches_nan_and_truncation() -> None:
    import uproot

    from detopt.simulation import EventBatch

    layers = ["l0", "l1"]
    tried: set[str] = set()

    @examples(20)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.root"
            n = 8
            branches: dict[str, Any] = {
                "l0": np.linspace(0.1, 1.0, n), "l1": np.linspace(0.2, 2.0, n),
                "energy": np.linspace(1.0, 10.0, n), "particle": np.full(n, 22, dtype=np.int32),
            }
            how = data.draw(st.sampled_from(["drop", "nan", "pdg", "truncate", "junk", "tree"]))
            named = str(path)
            if how == "drop":
                named = data.draw(st.sampled_from(sorted(branches)))
                del branches[named]
            elif how == "nan":
                named = data.draw(st.sampled_from(["l0", "l1", "energy"]))
                branches[named] = branches[named].copy()
                branches[named][data.draw(st.integers(0, n - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            elif how == "pdg":
                named = "particle"
                branches["particle"] = np.full(n, data.draw(st.sampled_from([13, 2212, 0, -22])), dtype=np.int32)
            with uproot.recreate(path) as f:
                f["events"] = branches
            if how == "truncate":
                raw = path.read_bytes()
                path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
            elif how == "junk":
                path.write_bytes(data.draw(st.binary(max_size=200)))
            tree = "other" if how == "tree" else "events"
            if how == "truncate":
                try:  # a cut that leaves every byte uproot needs is harmless: then the events must be intact
                    events = EventBatch.from_root(path, tree, layers, [True, True])
                except DataError:
                    pass
                else:
                    np.testing.assert_array_equal(events.energy, branches["energy"])
                    return
            with pytest.raises(DataError) as info:
                EventBatch.from_root(path, tree, layers, [True, True])
            assert str(path) in str(info.value) and named in str(info.value), str(info.value)
            tried.add(how + named + path.read_bytes().hex()[-200:])

    check()
    assert len(tried) >= 12


# ------------------------------------------------------------------------ saved models, run folders
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-iteration run directory of the calorimeter example (a few seconds)."""
    import torch

    from detopt.optimize.cli_commands import optimize_command

    folder = tmp_path_factory.mktemp("tiny")
    path = write_yaml(folder / "config.yaml", tiny_config(folder / "run"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert optimize_command(path, echo=lambda _line: None) == 0
    finally:
        torch.set_num_threads(threads)
    return folder / "run"


def _loaders() -> dict[str, Callable[[Path], Any]]:
    from detopt.design import DesignSpace
    from detopt.optimize.optimizer import DesignOptimizer
    from detopt.reconstruction.model import Reconstruction
    from detopt.surrogate.loss_surrogate import PerEventLossSurrogate

    def optimizer(folder: Path) -> Any:
        return DesignOptimizer.load(folder / "optimizer", DesignSpace.load(folder / "design_next.json"))

    return {
        "surrogate": lambda folder: PerEventLossSurrogate.load(folder / "surrogate"),
        "reconstruction": lambda folder: Reconstruction.load(folder / "reconstruction"),
        "optimizer": optimizer,
    }


OPTIONAL_RECORD_KEYS = frozenset({"n_retries", "dropped"})
"""record.json fields that runs written before fault tracking lack: missing or not, the record is valid."""


def _corrupt_file(path: Path, data: st.DataObject) -> str:
    """Damage one saved file: JSON gets a wrong/missing field or broken text, binaries get truncated or flipped bytes."""
    raw = path.read_bytes()
    if path.suffix == ".json" and data.draw(st.booleans()):
        document = json.loads(raw)
        optional = OPTIONAL_RECORD_KEYS if path.name == "record.json" else frozenset()
        key = data.draw(st.sampled_from(sorted(set(document) - optional)))
        if data.draw(st.booleans()):
            del document[key]
            how = f"drop {key}"
        else:
            original = document[key]
            kinds = (int, float) if isinstance(original, (int, float)) and not isinstance(original, bool) else type(original)
            document[key] = data.draw(  # a value of another type: a well-typed but odd value is not malformed
                st.one_of(junk_text, st.integers(), st.lists(st.integers(), max_size=2), st.none()).filter(
                    lambda v: not isinstance(v, kinds)
                )
            )
            how = f"set {key}"
        path.write_text(json.dumps(document))
        return how
    # a flipped byte inside a JSON string or number, or a cut trailing newline, can leave a valid document
    how = data.draw(st.sampled_from(["truncate", "junk", "empty"] if path.suffix == ".json" else ["truncate", "flip", "junk", "empty"]))
    if how == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(1, len(raw.rstrip()) - 1))])
    elif how == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        path.write_bytes(raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :])
    elif how == "junk":
        path.write_bytes(data.draw(st.binary(min_size=1, max_size=100)))
    else:
        path.write_bytes(b"")
    return how


def test_saved_models_corrupt_safetensors_and_wrong_json(tiny_run: Path) -> None:
    from detopt.optimize.loop import iteration_dir

    source = iteration_dir(tiny_run, 0)
    loaders = _loaders()
    tried: set[str] = set()

    @examples(45)
    @given(model=st.sampled_from(sorted(loaders)), data=st.data())
    def check(model: str, data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "0000"
            shutil.copytree(source, folder)
            files = sorted(p for p in (folder / model).iterdir() if p.is_file())
            target = data.draw(st.sampled_from(files))
            how = _corrupt_file(target, data)
            try:
                loaders[model](folder)
            except DataError as exc:
                assert target.name in str(exc) or str(target.parent) in str(exc), (how, str(exc))
            else:  # only a change that leaves the model identical may load (e.g. a flip inside JSON whitespace)
                assume(False)
            tried.add(f"{model}/{target.name}/{how}/{target.read_bytes()[:2000].hex()}")

    check()
    assert len(tried) >= 35


def test_corrupt_run_directories_for_status_report_and_evaluate(tiny_run: Path) -> None:
    """``status`` and ``report`` read every record.json; ``report`` and ``evaluate`` read config.yaml."""
    from detopt.optimize.config import load_config
    from detopt.optimize.loop import iteration_dir

    tried: set[str] = set()
    cases = [("status", "record.json"), ("report", "record.json"), ("report", "config.yaml"), ("evaluate", "config.yaml")]

    @examples(25)
    @given(case=st.sampled_from(cases), data=st.data())
    def check(case: tuple[str, str], data: st.DataObject) -> None:
        command, name = case
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            shutil.copytree(tiny_run, run)
            target = run / name if name == "config.yaml" else iteration_dir(run, 0) / name
            if name == "config.yaml":
                target.write_bytes(_corrupt_text(target.read_text(), data))
                try:
                    load_config(target)
                    assume(False)  # still a valid configuration: not malformed
                except DetoptError:
                    pass
                how = "yaml"
            else:
                how = _corrupt_file(target, data)
            before = snapshot([run])
            args = [command, str(run)] + (["--events", "100"] if command == "evaluate" else [])
            assert_clean_cli_error(run_cli(args), names=[name], before=before, folders=[run])
            tried.add(f"{command}/{name}/{how}/{target.read_bytes()[:500].hex()}")

    check()
    assert len(tried) >= 20


# -------------------------------------------------------------------------------- CLI arguments
def _bad_arguments(data: st.DataObject, folder: Path, config: Path) -> tuple[list[str], list[str]]:
    """A malformed command line of one of the ``detopt`` commands, and the names its error may mention."""
    a_file = folder / "plain.txt"
    missing = str(folder / data.draw(IDENTIFIERS))
    command = data.draw(st.sampled_from(["simulate", "optimize", "status", "report", "evaluate", "materials", "geant4", "root"]))
    bad_int_text = st.one_of(junk_text, st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer()).map(str))
    if command == "simulate":
        option, value = data.draw(st.sampled_from([
            ("--events", bad_int_text), ("--events", st.integers(max_value=0).map(str)),
            ("--seed", st.integers(max_value=-1).map(str)), ("--energy", junk_text),
            ("--energy", st.tuples(st.floats(1, 10), st.floats(0.01, 0.9)).map(lambda t: f"{t[0]}:{t[1]}")),
            ("--voxels", junk_text), ("--voxels", st.integers(1001, 10**6).map(lambda n: f"{n}x4")),
            ("--particles", st.sampled_from(["muon", "proton,", "kaon", ",,", "gamma,neutrino"])),
            ("--design", st.just(missing + ".yaml")), ("--output", st.just(str(a_file / "x.parquet"))),
            ("--output", st.just(missing + ".csv")),
        ]))
        return ["simulate", "-n", "10", option, data.draw(value)], [option, missing]
    if command == "optimize":
        option, value = data.draw(st.sampled_from([
            ("--iterations", bad_int_text), ("--iterations", st.integers(max_value=0).map(str)),
            ("--workers", st.integers(max_value=0).map(str)), ("--workers", bad_int_text),
            ("--run-dir", st.just(str(a_file / "run"))), ("CONFIG", st.just(missing + ".yaml")),
        ]))
        if option == "CONFIG":
            return ["optimize", data.draw(value)], [missing]
        return ["optimize", str(config), option, data.draw(value)], [option, "iterations", "n_workers", "run_dir"]
    if command in ("status", "report", "evaluate"):
        where = data.draw(st.sampled_from([missing, str(a_file), str(folder / "not_a_run")]))
        extra = []
        if command == "evaluate" and data.draw(st.booleans()):
            extra = ["--events", data.draw(st.one_of(bad_int_text, st.integers(max_value=99).map(str)))]
        return [command, where, *extra], ["run", "--events"]
    if command == "materials":
        return ["materials", data.draw(junk_text.filter(lambda s: not s.startswith("-")))], ["materials", "argument"]
    if command == "geant4":
        return ["geant4", "offline-data", str(a_file / "data")], ["directory", str(a_file)]
    option = "--" + data.draw(IDENTIFIERS.filter(lambda s: s not in ("version", "help")))
    return data.draw(st.sampled_from([[option], ["no-such-command"], [data.draw(IDENTIFIERS.filter(lambda s: s not in (
        "simulate", "optimize", "status", "report", "evaluate", "materials", "geant4")))]])), []


def test_cli_arguments_of_every_command() -> None:
    tried: set[str] = set()

    @examples(60)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "plain.txt").write_text("not a folder")
            (folder / "not_a_run").mkdir()  # a folder without config.yaml
            config = write_yaml(folder / "config.yaml", tiny_config(folder / "run"))
            args, names = _bad_arguments(data, folder, config)
            before = snapshot([folder])
            assert_clean_cli_error(run_cli(args), names=names, before=before, folders=[folder])
        tried.add(" ".join(args).replace(str(folder), "TMP"))

    check()
    assert len(tried) >= 30  # distinct argument lists (hypothesis repeats some draws)
