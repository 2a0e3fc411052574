"""Shared fixtures of the execution tests: a single-node Slurm cluster on this machine (session scope)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # slurm_cluster (pytest runs with --import-mode=importlib)

from slurm_cluster import LocalSlurm, unavailable_reason  # noqa: E402


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[LocalSlurm]:
    """munged, slurmctld and slurmd on localhost, configured in a temporary folder; SLURM_CONF points at it.

    Skips with the reason where Slurm cannot run (not root, packages missing: scripts/install_slurm.sh).
    The daemons are stopped by their PIDs and the folder removed at the end of the session.
    """
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = LocalSlurm.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in cluster.env.items():
                mp.setenv(key, value)
            yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)
