#!/usr/bin/env bash
# Create .venv and install detopt with its test tools, the benchmark optimizers (cma, optuna) and the Geant4 bindings (geant4-pybind, no data
# sets: see docs/geant4.md). Idempotent; safe to rerun.
# PyTorch is pinned here to the CPU build (torch==2.13.0); pyproject.toml only asks for torch>=2.4,
# so a machine with a CUDA build already installed keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test,geant4,bench]"
