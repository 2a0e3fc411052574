"""Helpers of the malformed-input tests: hypothesis strategies for bad values and files, and the checks.

The property every entry point must have: bad input ends in an error that names the problem
(``DetoptError`` in-process; on the command line one ``error: ...`` line on stderr, a non-zero
exit and no traceback), and no partial file is left behind.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click.testing
import typer.main
import yaml
from hypothesis import strategies as st
from click.testing import Result

from detopt.cli.main import app

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "examples" / "quick.yaml"

runner = click.testing.CliRunner()


@functools.lru_cache(maxsize=1)
def _quick() -> dict[str, Any]:
    return yaml.load(QUICK.read_text(), Loader=yaml.CSafeLoader)


def tiny_config(run_dir: Path) -> dict[str, Any]:
    """examples/quick.yaml cut down to one in-process iteration of a few seconds."""
    config = copy.deepcopy(_quick())
    config.update(iterations=1, run_dir=str(run_dir))
    config["simulation"].update(events_per_design=60, designs_per_iteration=3)
    config["execution"].update(backend="serial")
    config["reconstruction"].update(epochs=2)
    config["surrogate"].update(epochs=2, hidden=[16, 16], train_steps=10, ddim_steps=2)
    config["optimizer"].update(max_steps=5, events=50, global_designs=0)
    return config


def snapshot(folders: Iterable[Path]) -> dict[str, int]:
    """Every file under ``folders`` with its size (to prove a failed command wrote nothing)."""
    files: dict[str, int] = {}
    for folder in folders:
        if folder.exists():
            for path in folder.rglob("*"):
                files[str(path)] = path.stat().st_size if path.is_file() else -1
    return files


@functools.lru_cache(maxsize=1)
def _command() -> click.Command:
    return typer.main.get_command(app)  # built once: typer rebuilds it on every CliRunner.invoke(app)


def run_cli(args: list[str]) -> Result:
    """``detopt ARGS`` in-process, through the same root ``main`` as the console script."""
    return runner.invoke(_command(), args)


def assert_clean_cli_error(result: Result, *, names: Iterable[str] = (), before: dict[str, int], folders: Iterable[Path]) -> str:
    """Exit status 2, exactly one ``error: ...`` line on stderr naming one of ``names``, no traceback, no new file."""
    assert isinstance(result.exception, SystemExit) or result.exception is None, repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    names = list(names)
    if names:
        assert any(n in lines[0] for n in names), (names, lines[0])
    assert snapshot(folders) == before, "a failed command left a file behind"
    return lines[0]


# --------------------------------------------------------------------------- strategies
def _number_like(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip().lower() in {"true", "false", "yes", "no", "on", "off", "null", "~", ""}
    return True


junk_text = st.text(min_size=1, max_size=12).filter(lambda s: not _number_like(s))
"""Text that no number field accepts (pydantic's lax mode would read '5' as 5)."""

junk_containers = st.one_of(
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=2),
)


def bad_int(minimum: int) -> st.SearchStrategy[Any]:
    """Not a whole number >= ``minimum``: too small, fractional, non-finite, text, a container."""
    return st.one_of(
        st.integers(max_value=minimum - 1),
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (math.isfinite(x) and x.is_integer())),
        junk_text,
        junk_containers,
    )


def bad_positive_float(strict: bool = True) -> st.SearchStrategy[Any]:
    """Not a finite number > 0 (>= 0 when not ``strict``)."""
    upper = 0.0 if strict else -1e-9
    return st.one_of(
        st.floats(max_value=upper, allow_nan=False, allow_infinity=False),
        st.just(float("nan")),
        st.just(float("-inf")),
        junk_text,
        junk_containers,
    )


def bad_choice(allowed: Iterable[str]) -> st.SearchStrategy[Any]:
    allowed = set(allowed)
    return st.one_of(st.text(max_size=10).filter(lambda s: s not in allowed), st.integers(), junk_containers)


#: dotted path in the run configuration -> a strategy of values it must refuse (the field must be named)
CONFIG_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "seed": bad_int(0),
    "iterations": bad_int(1),
    "simulation.events_per_design": bad_int(1),
    "simulation.designs_per_iteration": bad_int(2),
    "simulation.simulator": bad_choice(["fastsim", "geant4", "command", "python"]),
    "simulation.energy_range_gev": st.one_of(
        st.tuples(st.floats(min_value=1.0, max_value=50.0), st.floats(max_value=0.0)),
        st.tuples(st.floats(max_value=0.0), st.floats(min_value=1.0, max_value=10.0)),
        st.lists(st.floats(min_value=1.0, max_value=2.0), min_size=3, max_size=4),
        junk_text,
    ),
    "simulation.particles": st.lists(st.sampled_from(["muon", "proton", "kaon", "photon", ""]), min_size=1, max_size=3),
    "execution.backend": bad_choice(["local", "serial", "dask", "slurm", "htcondor", "pbs", "lsf", "address"]),
    "execution.n_workers": bad_int(1),
    "execution.retries": bad_int(0),
    "execution.timeout_s": bad_positive_float(),
    "execution.min_designs": bad_int(2),
    "execution.local_host": st.one_of(st.sampled_from(["has space", "a/b", "", "x;rm -rf", "host\n"]), junk_containers),
    "optimizer.lr": bad_positive_float(),
    "optimizer.max_steps": bad_int(1),
    "optimizer.trust_region_b": bad_positive_float(),
    "optimizer.boundary_weight": bad_positive_float(strict=False),
    "optimizer.events": bad_int(1),
    "optimizer.covariance": bad_choice(["adaptive", "aido"]),
    "optimizer.adam": bad_choice(["fresh", "carry"]),
    "optimizer.origin": bad_choice(["observed", "surrogate"]),
    "optimizer.global_designs": st.one_of(bad_int(0), st.just(1)),
    "optimizer.width.initial": bad_positive_float(),
    "optimizer.width.maximum": bad_positive_float(),
    "optimizer.width.failure_tolerance": bad_int(1),
    "optimizer.discrete.max_change": st.one_of(st.floats(min_value=1.0, exclude_min=True), st.floats(max_value=0.0), junk_text),
    "optimizer.discrete.sampling_floor": st.one_of(st.floats(min_value=0.5), st.floats(max_value=0.0, exclude_max=True), junk_text),
    "optimizer.discrete.commit_iterations": bad_int(0),
    "simulation.common_random_numbers": st.one_of(st.sampled_from(["maybe", "2", "si"]), junk_containers),
    "reconstruction.epochs": bad_int(1),
    "reconstruction.lr": bad_positive_float(),
    "reconstruction.batch_size": bad_int(1),
    "surrogate.train_steps": bad_int(2),
    "surrogate.ddim_steps": bad_int(1),
    "surrogate.epochs": bad_int(1),
    "surrogate.prediction": bad_choice(["v", "epsilon"]),
    "surrogate.residual": bad_choice(["mean_scale", "mean", "mlp", "none"]),
    "penalties.length.limit_cm": bad_positive_float(),
    "penalties.cost.limit_eur": bad_positive_float(),
    "penalties.cost.weight": bad_positive_float(strict=False),
}


def set_path(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``config`` with ``dotted`` set to ``value``."""
    out = copy.deepcopy(config)
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")] if folder.exists() else True


def environ_without_ci() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "CI"}
