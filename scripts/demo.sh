#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the built-in simulator: a short SRSO optimization
# of the AIDO paper's sampling calorimeter (examples/quick.yaml), a check of the start and final designs by
# fresh simulation (detopt evaluate), and the report (runs/quick/report).
# Rerunning resumes the run in runs/quick; delete that folder to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/detopt optimize examples/quick.yaml "$@"
.venv/bin/detopt status runs/quick
.venv/bin/detopt evaluate runs/quick
.venv/bin/detopt report runs/quick
