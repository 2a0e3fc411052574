"""Atomic file writes: write to a temporary file in the same folder, then rename.

A crash or a full disk leaves either the old file or the new one, never a
half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_json_document(path: str | os.PathLike[str], format_name: str) -> dict:
    """Read a JSON object written by detopt and check its ``format`` field; DataError names the file.

    Used by every saved model (weights travel beside it as safetensors), so that a missing,
    corrupt or foreign file always gets the same clear message.
    """
    import json

    from detopt.errors import DataError

    p = Path(path)
    try:
        document = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != format_name:
        got = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise DataError(f"{p}: format {got!r} is not {format_name!r} (field 'format')")
    return document


def write_weights_document(
    folder: str | os.PathLike[str],
    tensors: Mapping[str, Any],
    document: Mapping[str, Any],
    *,
    weights_file: str,
    document_file: str,
    metadata: Mapping[str, str],
) -> Path:
    """Write ``tensors`` as safetensors, then the JSON ``document`` naming that file and its SHA-256.

    The weights go first (each file atomically), so a document never points at weights that are
    missing or half-written; :func:`read_json_document` reads the document back.
    """
    import hashlib
    import json

    from safetensors.torch import save as safetensors_save

    folder = Path(folder)
    state = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    blob = safetensors_save(state, metadata=dict(metadata))
    write_bytes_atomic(folder / weights_file, blob)
    full = {**document, "weights_file": weights_file, "weights_sha256": hashlib.sha256(blob).hexdigest()}
    write_text_atomic(folder / document_file, json.dumps(full, indent=2) + "\n")
    return folder


def read_weights(path: str | os.PathLike[str], expected_sha256: str | None, document_file: str) -> dict[str, Any]:
    """The tensors of a safetensors file written by :func:`write_weights_document`, checked against the
    SHA-256 its document recorded (``None``: a document written before checksums; no check).

    A missing, corrupt or foreign file is a ``DataError`` naming it.
    """
    import hashlib

    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    from detopt.errors import DataError

    p = Path(path)
    try:
        blob = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except OSError as exc:  # a folder, no permission
        raise DataError(f"{p}: cannot read weights ({exc.strerror or exc})") from None
    if expected_sha256 is not None and hashlib.sha256(blob).hexdigest() != expected_sha256:
        raise DataError(
            f"{p}: SHA-256 differs from 'weights_sha256' in {document_file}; the file is corrupt or belongs to another save"
        )
    try:
        return safetensors_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise DataError(f"{p}: cannot read weights: not a readable safetensors file ({exc})") from None


def read_parquet(path: str | os.PathLike[str], metadata_key: bytes) -> tuple[Any, bytes | None]:
    """A Parquet file's table and its schema metadata under ``metadata_key`` (``None`` if absent).

    A missing or unreadable file is a ``DataError`` naming it (pyarrow raises several error types).
    """
    import pyarrow.parquet as pq

    from detopt.errors import DataError

    p = Path(path)
    try:
        table = pq.read_table(p)
    except FileNotFoundError:
        raise DataError(f"{p}: no such file") from None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{p}: not a readable Parquet file ({exc})") from None
    return table, (table.schema.metadata or {}).get(metadata_key)
