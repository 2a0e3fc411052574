#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the built-in simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/detopt simulate --events 20000 --seed 1 -o runs/demo/aido_start.parquet "$@"
