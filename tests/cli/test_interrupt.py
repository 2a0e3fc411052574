"""Ctrl-C during ``detopt optimize``: the complete iterations stay, and the message says how to resume."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))  # malformed.py (pytest runs with --import-mode=importlib)

from malformed import tiny_config  # noqa: E402

DETOPT = Path(sys.executable).with_name("detopt")


def test_ctrl_c_keeps_complete_iterations_and_says_how_to_resume(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run")
    config["iterations"] = 50
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [str(DETOPT), "optimize", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for the first complete iteration
        line = process.stdout.readline()
        if line.startswith("iter"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "rerun the same command to resume" in err and "Traceback" not in err
    assert (tmp_path / "run" / "iterations" / "0000" / "done.json").is_file()
