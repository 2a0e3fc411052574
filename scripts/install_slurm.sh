#!/usr/bin/env bash
# Install a single-node Slurm (Debian's slurmctld, slurmd, slurm-client) and munge for the Slurm integration test
# (tests/execution/test_exec_clusters.py, which configures and starts the daemons itself; see docs/clusters.md).
# Idempotent and quiet: does nothing when the daemons are already installed. Never fails the test run: when not
# root or without apt-get, it says so on stderr and the Slurm test skips with the reason.
set -u
if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
    && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_slurm.sh: not root; Slurm not installed (the Slurm integration test will skip)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_slurm.sh: no apt-get; Slurm not installed (the Slurm integration test will skip)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
packages="slurmctld slurmd slurm-client munge"
# first from the package lists already on the machine; if that fails, refresh them once (each step time-limited)
if ! { timeout 300 apt-get install -y -q --no-install-recommends $packages >"$log" 2>&1 \
        || { timeout 300 apt-get update -q >>"$log" 2>&1 \
             && timeout 300 apt-get install -y -q --no-install-recommends $packages >>"$log" 2>&1; }; }; then
    echo "install_slurm.sh: apt-get could not install slurmctld slurmd slurm-client munge (the Slurm integration test will skip); last lines:" >&2
    tail -n 5 "$log" >&2
fi
rm -f "$log"
exit 0
