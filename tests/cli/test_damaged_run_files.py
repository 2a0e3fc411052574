"""Every kind of run-directory file damaged every way, then resume, status, report and evaluate:
no traceback, one ``error:`` line (exit 2) or a clean success, and no write outside the run."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # malformed.py (pytest runs with --import-mode=importlib)

from malformed import run_cli, snapshot, tiny_config, write_yaml  # noqa: E402

FILES = (
    "config.yaml", "run.json", "iterations/0000/done.json", "iterations/0000/record.json",
    "iterations/0000/design.json", "iterations/0000/design_next.json", "iterations/0000/covariance.json",
    "iterations/0000/covariance_next.json", "iterations/0000/step_origin.json", "iterations/0000/validation.json",
    "iterations/0000/events.parquet", "iterations/0000/optimizer/design_optimizer.json",
    "iterations/0000/optimizer/design_optimizer.safetensors", "iterations/0000/surrogate/model.safetensors",
    "iterations/0000/surrogate/model.json", "iterations/0000/surrogate/loss_surrogate.json",
    "iterations/0000/reconstruction/weights.safetensors", "iterations/0000/reconstruction/reconstruction.json",
    "iterations/0000/reconstruction/optimizer.safetensors", "iterations/0000/optimizer", "iterations/0000",
)
DAMAGES = ("truncate", "empty", "junk", "delete", "folder", "symlink")
COMMANDS = ("optimize", "status", "report", "evaluate")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("damaged")
    path = write_yaml(folder / "config.yaml", tiny_config(folder / "run"))
    assert run_cli(["optimize", str(path)]).exit_code == 0
    return folder / "run", path


def _damage(target: Path, how: str, outside: Path) -> None:
    if target.is_dir() and how in ("truncate", "empty", "junk"):
        how = "delete"  # a folder has no bytes to damage
    raw = target.read_bytes() if target.is_file() else b""
    if how in ("delete", "folder", "symlink"):
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    if how == "truncate":
        target.write_bytes(raw[: max(1, len(raw) // 3)])
    elif how == "empty":
        target.write_bytes(b"")
    elif how == "junk":
        target.write_bytes(b"\x00\xffnot what detopt wrote {[" * 7)
    elif how == "folder":
        target.mkdir()
    elif how == "symlink":
        target.symlink_to(outside if not target.name.startswith("0") else outside.parent)


def test_damaged_run_files_never_end_in_a_traceback(tiny_run: tuple[Path, Path]) -> None:
    run, config = tiny_run
    existing = [f for f in FILES if (run / f).exists()]
    assert len(existing) == len(FILES), sorted(set(FILES) - set(existing))
    tried: set[str] = set()

    @settings(max_examples=80, deadline=None, database=None, phases=(Phase.explicit, Phase.generate),
              suppress_health_check=list(HealthCheck))
    @seed(2026)
    @given(name=st.sampled_from(existing), how=st.sampled_from(DAMAGES), command=st.sampled_from(COMMANDS))
    def check(name: str, how: str, command: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "run"
            shutil.copytree(run, copy, symlinks=True)
            outside = Path(tmp) / "outside.txt"
            outside.write_text("a file outside the run\n")
            _damage(copy / name, how, outside)
            cfg = Path(tmp) / "config.yaml"
            cfg.write_text(config.read_text().replace(str(run), str(copy)).replace("iterations: 1", "iterations: 2"))
            before = snapshot([copy / "iterations"])
            args = {"optimize": ["optimize", str(cfg)], "status": ["status", str(copy)], "report": ["report", str(copy)],
                    "evaluate": ["evaluate", str(copy), "--events", "100"]}[command]
            result = run_cli(args)
            assert "Traceback" not in result.output, (name, how, command, result.output[-2000:])
            assert isinstance(result.exception, SystemExit) or result.exception is None, (name, how, command, repr(result.exception))
            assert result.exit_code in (0, 2), (name, how, command, result.exit_code, result.output[-500:])
            if result.exit_code == 2:
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), (name, how, command, result.stderr)
                assert snapshot([copy / "iterations"]) == before, (name, how, command, "a refused command wrote files")
            assert outside.read_text() == "a file outside the run\n"
            assert sorted(p.name for p in Path(tmp).iterdir()) == ["config.yaml", "outside.txt", "run"]
        tried.add(f"{name}/{how}/{command}")

    check()
    assert len(tried) >= 60
