#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite: the fast default set on 2 processes.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the long tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_slurm.sh  # Debian's Slurm + munge for the Slurm integration test (root only; never fails)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
if [ "$#" -eq 0 ]; then
    set -- -m "not slow"
fi
exec .venv/bin/python -m pytest -n 2 "$@"
