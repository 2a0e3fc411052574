"""A user's own simulation: an external program (e.g. a compiled Geant4 application) or a Python function.

- :class:`CommandSimulation` runs a templated command line per design. The design is written as
  JSON (parameter name -> value or category); the program writes its events to ``{output}`` as a
  ROOT TTree (read with uproot) or a Parquet table; :class:`ColumnMap` says which branches are
  the features, the targets and the context. The program runs in its own process group, which is
  killed when it outlives ``timeout_s`` or when the attempt is interrupted, so no process of it
  survives; a non-zero exit raises :class:`ExternalSimulationError` with the exit code and the
  tail of its standard error (which the run records in ``faults.jsonl``).
- :class:`PythonSimulation` calls ``package.module:function(design, n_events, seed)``, which
  returns either :class:`~detopt.optimize.problem.Events` or columns (a mapping of name -> array,
  a pyarrow Table or a pandas DataFrame) mapped by a :class:`ColumnMap`.

Both are picklable and run on the executor's workers like the built-in simulators.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detopt.entry_points import EntryPoint
from detopt.errors import ConfigError, DataError

__all__ = [
    "PLACEHOLDERS",
    "ColumnMap",
    "CommandSimulation",
    "ExternalSimulationError",
    "PythonSimulation",
    "SimulationTimeout",
    "check_template",
]

PLACEHOLDERS = ("design_json", "output", "seed", "n_events", "python", "config_dir")
"""What a command template may contain, in braces: the design file, the output file, the seed, the
number of events, this Python interpreter and the folder of the run configuration."""

STDERR_TAIL_CHARS = 800
KILL_GRACE_S = 2.0  # seconds between SIGTERM and SIGKILL of a program's process group


class ExternalSimulationError(RuntimeError):
    """The user's program failed: its exit code and the tail of its standard error are in the message."""


class SimulationTimeout(RuntimeError):
    """The user's program ran past ``execution.timeout_s`` and its process group was killed."""


@dataclass(frozen=True)
class ColumnMap:
    """Which columns (ROOT branches, Parquet columns) are the features, the targets and the context."""

    features: tuple[str, ...]
    targets: tuple[str, ...]
    context: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.features + self.targets + self.context

    def events(self, columns: Mapping[str, Any], source: str) -> Any:
        """Events from per-event columns; a DataError names a missing column or a non-finite value."""
        from detopt.optimize.problem import Events

        missing = [n for n in self.names if n not in columns]
        if missing:
            have = ", ".join(sorted(map(str, columns))) or "none"
            raise DataError(f"{source}: no column(s) {', '.join(missing)} (it has: {have})")

        def block(names: tuple[str, ...], n: int | None) -> np.ndarray:
            if not names:
                return np.zeros((n or 0, 0))
            arrays = []
            for name in names:
                try:
                    a = np.asarray(columns[name], dtype=np.float64)
                except (TypeError, ValueError):
                    raise DataError(f"{source}: column {name!r} is not numeric (one number per event)") from None
                if a.ndim != 1:
                    raise DataError(f"{source}: column {name!r} must hold one number per event, got shape {a.shape}")
                if not np.all(np.isfinite(a)):
                    raise DataError(f"{source}: column {name!r} has {int(np.sum(~np.isfinite(a)))} NaN or infinite value(s)")
                arrays.append(a)
            lengths = {len(a) for a in arrays}
            if len(lengths) != 1:
                raise DataError(f"{source}: columns {', '.join(names)} have different lengths {sorted(lengths)}")
            return np.stack(arrays, axis=1)

        target = block(self.targets, None)
        if len(target) == 0:
            raise DataError(f"{source}: no events")
        features = block(self.features, len(target))
        context = block(self.context, len(target))
        if len(features) != len(target) or len(context) != len(target):
            raise DataError(f"{source}: features, targets and context have different numbers of events")
        return Events(features, context, target)


def check_template(template: Sequence[str], field: str) -> None:
    """Every ``{placeholder}`` of a command template is known, and the design and output files are used."""
    import string

    used: set[str] = set()
    for token in template:
        try:
            parsed = list(string.Formatter().parse(token))
        except ValueError as exc:
            raise ConfigError(field, f"malformed template {token!r}: {exc}") from None
        for _, name, _, _ in parsed:
            if name is None:
                continue
            if name not in PLACEHOLDERS:
                raise ConfigError(field, f"unknown placeholder {{{name}}}; allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
            used.add(name)
    for needed in ("design_json", "output"):
        if needed not in used:
            raise ConfigError(field, f"the command must contain {{{needed}}} (where the design is read / the events written)")


def _read_columns(path: Path, fmt: str, tree: str | None, names: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"{what} wrote no output file {path.name}")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            # every column name (for the error message), arrays only for the ones the column map reads
            return {n: (table.column(n).to_numpy() if n in names else None) for n in table.column_names}
        import uproot

        with uproot.open(path) as f:
            trees = [k.split(";")[0] for k, cls in f.classnames().items() if cls in ("TTree", "ROOT::RNTuple")]
            name = tree
            if name is None:
                if len(trees) != 1:
                    raise DataError(f"{what}: {path.name} holds {len(trees)} trees ({', '.join(trees)}); name one in simulation.command.tree")
                name = trees[0]
            if name not in trees:
                raise DataError(f"{what}: {path.name} has no tree {name!r} (it has: {', '.join(trees) or 'none'})")
            t = f[name]
            keys = list(t.keys())
            present = [n for n in names if n in keys]
            arrays = t.arrays(present, library="np") if present else {}
            return {k: (np.asarray(arrays[k]) if k in present else None) for k in keys}
    except DataError:
        raise
    except Exception as exc:  # a truncated or foreign file
        raise DataError(f"{what}: cannot read {path.name} as {fmt}: {type(exc).__name__}: {exc}") from None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the program's process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + KILL_GRACE_S
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group may hold children even after the leader exited
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


@dataclass(frozen=True)
class CommandSimulation:
    """``(design, n_events, seed) -> Events`` by running an external program (module docstring)."""

    command: tuple[str, ...]
    columns: ColumnMap
    output_format: str = "root"  # "root" or "parquet"
    tree: str | None = None
    working_dir: str | None = None
    config_dir: str = "."
    timeout_s: float | None = None
    environment: tuple[tuple[str, str], ...] = ()

    def argv(self, design_json: Path, output: Path, seed: int, n_events: int) -> list[str]:
        values = {
            "design_json": str(design_json), "output": str(output), "seed": str(int(seed)),
            "n_events": str(int(n_events)), "python": sys.executable, "config_dir": self.config_dir,
        }
        return [token.format(**values) for token in self.command]

    def __call__(self, design: Mapping[str, float | str], n_events: int, seed: int) -> Any:
        scratch = Path(tempfile.mkdtemp(prefix="detopt-sim-"))
        try:
            design_json = scratch / "design.json"
            design_json.write_text(json.dumps(dict(design), indent=2) + "\n", encoding="utf-8")
            output = scratch / ("events.parquet" if self.output_format == "parquet" else "events.root")
            argv = self.argv(design_json, output, seed, n_events)
            self._run(argv, scratch)
            what = f"simulation command {shlex.quote(Path(argv[0]).name)}"
            columns = _read_columns(output, self.output_format, self.tree, self.columns.names, what)
            return self.columns.events(columns, f"{what} output {output.name}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run(self, argv: list[str], scratch: Path) -> None:
        stderr_path = scratch / "stderr.txt"
        env = {**os.environ, **dict(self.environment)}
        with open(stderr_path, "wb") as stderr, open(scratch / "stdout.txt", "wb") as stdout:
            try:
                process = subprocess.Popen(
                    argv, cwd=self.working_dir or self.config_dir, stdout=stdout, stderr=stderr,
                    stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                )
            except OSError as exc:
                raise ExternalSimulationError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
            started = time.monotonic()
            try:
                while process.poll() is None:  # a Python loop, so an executor timeout can interrupt it
                    if self.timeout_s is not None and time.monotonic() - started > self.timeout_s:
                        _kill_group(process)
                        raise SimulationTimeout(
                            f"{Path(argv[0]).name} ran longer than execution.timeout_s = {self.timeout_s:g} s; "
                            "its process group was killed"
                        )
                    time.sleep(0.02)
            finally:
                if process.returncode is None:
                    _kill_group(process)
                else:  # children the program left behind in its group
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
        if process.returncode != 0:
            tail = stderr_path.read_bytes()[-STDERR_TAIL_CHARS:].decode("utf-8", "replace").strip()
            code = process.returncode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            raise ExternalSimulationError(f"{Path(argv[0]).name} {how}" + (f"; stderr: {tail}" if tail else "; no stderr"))


def _as_columns(result: Any) -> Mapping[str, Any] | None:
    if isinstance(result, Mapping):
        return result
    if hasattr(result, "column_names") and hasattr(result, "column"):  # pyarrow Table
        return {n: result.column(n).to_numpy() for n in result.column_names}
    if hasattr(result, "columns") and hasattr(result, "to_numpy"):  # pandas DataFrame
        return {str(n): result[n].to_numpy() for n in result.columns}
    return None


@dataclass(frozen=True)
class PythonSimulation:
    """``(design, n_events, seed) -> Events`` by calling a user's function (module docstring)."""

    function: EntryPoint
    columns: ColumnMap | None = None

    def __call__(self, design: Mapping[str, float | str], n_events: int, seed: int) -> Any:
        from detopt.optimize.problem import Events

        result = self.function.load()(dict(design), int(n_events), int(seed))
        if isinstance(result, Events):
            return result
        columns = _as_columns(result)
        name = self.function.spec
        if columns is None:
            raise DataError(f"{name} returned {type(result).__name__}; expected Events or columns (a mapping of name -> array)")
        if self.columns is None:
            raise DataError(f"{name} returned columns: name the features and targets in simulation.columns")
        return self.columns.events(columns, name)
