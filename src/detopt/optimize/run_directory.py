"""The run directory as one object: iteration folders, records, faults, events and atomic JSON files.

Layout: ``RUN/iterations/NNNN/`` per iteration (complete once ``done.json`` is written, last),
``RUN/faults.jsonl`` (append-only), and the files of :mod:`detopt.optimize.run`
(``config.yaml``, ``run.json``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detopt.atomic import write_text_atomic
from detopt.errors import ConfigError, DataError

__all__ = [
    "LOCK_FILE",
    "RUN_FILE",
    "run_lock",
    "RUN_FORMAT",
    "DONE_FILE",
    "FAULTS_FILE",
    "ITERATIONS_DIR",
    "RECORD_FORMAT",
    "WRITE_ERRNOS",
    "RunDirectory",
    "file_checksums",
    "read_run_info",
    "verify_iteration",
    "run_info",
    "to_jsonable",
]

RUN_FILE = "run.json"
LOCK_FILE = ".detopt.lock"
RUN_FORMAT = "detopt.run/1"
ITERATIONS_DIR = "iterations"
DONE_FILE = "done.json"
FAULTS_FILE = "faults.jsonl"
RECORD_FORMAT = "detopt.iteration/1"
#: errno values that mean "the run directory cannot be written" (full disk, quota, permissions, read-only)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG, errno.ENOTDIR})


def to_jsonable(value: Any) -> Any:
    """numpy arrays and scalars as plain JSON values (``json.dumps(default=...)``)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


@dataclass(frozen=True)
class RunDirectory:
    """One run's folder; every write is atomic (temporary file, then rename)."""

    path: Path

    def iteration(self, k: int) -> Path:
        return Path(self.path) / ITERATIONS_DIR / f"{k:04d}"

    def completed(self) -> int:
        """Number of consecutive complete iterations (those with ``done.json``) from 0."""
        k = 0
        while (self.iteration(k) / DONE_FILE).is_file():
            k += 1
        return k

    def records(self) -> list[dict[str, Any]]:
        """The ``record.json`` of every complete iteration, in order, each checked against its schema."""
        from pydantic import TypeAdapter, ValidationError

        from detopt.atomic import read_json_document
        from detopt.optimize.loop import IterationRecord

        schema = TypeAdapter(IterationRecord)
        out = []
        for i in range(self.completed()):
            path = self.iteration(i) / "record.json"
            record = read_json_document(path, RECORD_FORMAT)  # DataError naming the file if missing or corrupt
            try:
                schema.validate_python(record, strict=False)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "record"
                raise DataError(f"{path}: field {where!r}: {first['msg']}") from None
            out.append(record)
        return out

    def read_json(self, path: Path, key: str) -> Any:
        """``key`` of the JSON object in ``path``; a DataError naming the file if it is missing or damaged."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return data[key]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            last = self.completed() - 2  # the damaged file belongs to the last complete iteration
            intact = f"iterations 0-{last} are intact" if last >= 0 else "no earlier iteration is intact"
            raise DataError(
                f"{path}: cannot be read ({type(exc).__name__}: {exc}); {intact}: "
                "delete the damaged iteration folder and rerun to redo it"
            ) from None

    @staticmethod
    def write_json(path: Path, data: Any) -> None:
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=to_jsonable) + "\n")

    def append_faults(self, lines: list[dict[str, Any]]) -> None:
        """Append fault lines to ``faults.jsonl`` (one ``write``, so a crash cuts at most the last line)."""
        if not lines:
            return
        path = Path(self.path) / FAULTS_FILE
        try:  # never through a symbolic link: the faults of this run go into this run
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR):
                raise ConfigError("run_dir", f"{path} is a symbolic link or a folder, not the run's fault log; "
                                  "move it away and rerun to resume") from None
            raise
        try:
            os.write(fd, "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8"))
        finally:
            os.close(fd)

    def write_failure(self, exc: OSError, iteration: int) -> ConfigError:
        """The one-line error of a run directory that cannot be written; it says what is intact and how to resume."""
        where = exc.filename or self.path
        complete = self.completed()
        kept = f"iterations 0-{complete - 1} are complete and intact" if complete else "no iteration was complete yet"
        return ConfigError(
            "run_dir",
            f"cannot write {where} ({exc.strerror or exc}) during iteration {iteration}; {kept}; "
            "free space or fix the permissions, then rerun the same command to resume",
        )


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory exclusively (an flock the OS releases when the process dies, even by SIGKILL);
    a second driver on the same run stops at once with a ConfigError naming the holder's PID."""
    import fcntl

    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError("run_dir", f"cannot open the lock file {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise ConfigError(
                "run_dir", f"{run_dir} is in use by another detopt process (PID {holder}); wait for it or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def file_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` but ``done.json`` (relative path -> hex digest)."""
    import hashlib

    sums = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != DONE_FILE:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            sums[str(path.relative_to(folder))] = digest.hexdigest()
    return sums


def verify_iteration(run_dir: Path, iteration: int) -> None:
    """The files of a complete iteration are those its ``done.json`` recorded (resume reads them): a DataError
    naming the first changed, missing or damaged file otherwise. Iterations completed before checksums were
    recorded pass unchecked."""
    folder = Path(run_dir) / ITERATIONS_DIR / f"{iteration:04d}"
    try:
        done = json.loads((folder / DONE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{folder / DONE_FILE}: damaged; delete {folder} to redo iteration {iteration}") from None
    recorded = done.get("sha256") if isinstance(done, dict) else None
    if not isinstance(recorded, dict):
        return
    for name, digest in recorded.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise DataError(f"{path}: missing (or replaced by a link or folder) since iteration {iteration} was completed; "
                            f"restore it, or delete {folder} to redo that iteration")
    actual = file_checksums(folder)
    intact = f"iterations 0-{iteration - 1} are intact" if iteration > 0 else "no earlier iteration exists"
    for name, digest in recorded.items():
        if actual.get(name) != digest:
            raise DataError(f"{folder / name}: changed since iteration {iteration} was completed (checksum in done.json); "
                            f"{intact}: restore the file, or delete {folder} to redo iteration {iteration}")


def run_info(seed: int, source: str, monitors: dict[str, Any]) -> dict[str, Any]:
    """What ``run.json`` holds: the seed, where the run was started from ("config" or "python") and the
    recorded quantities with their limits and units (so status and report need no configuration)."""
    return {
        "format": RUN_FORMAT, "seed": int(seed), "source": source,
        "monitors": {name: {"limit": m.limit, "unit": m.unit} for name, m in monitors.items()},
    }


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run directory; a ConfigError naming the folder when it is not a detopt run."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        if (Path(run_dir) / "config.yaml").is_file():  # written before run.json recorded the monitors
            return {"format": RUN_FORMAT, "source": "config", "monitors": {}}
        raise ConfigError("run", f"{run_dir} is not a detopt run directory (no run.json)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: damaged ({type(exc).__name__}); it is rewritten when the run is resumed") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        raise DataError(f"{path}: not a detopt run file (format {info.get('format') if isinstance(info, dict) else None!r})")
    info.setdefault("source", "config")
    monitors = info.get("monitors")
    info["monitors"] = monitors if isinstance(monitors, dict) else {}
    return info
