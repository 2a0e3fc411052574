"""A single-node Slurm cluster on this machine for the integration test, from Debian's packages.

``LocalSlurm.start(folder)`` writes a ``slurm.conf`` into ``folder`` (state, spool, logs and
PID files there too), starts ``munged`` with a key of its own on a socket in that folder,
then ``slurmctld`` and ``slurmd -N localhost``, and waits until the node is idle. The
configuration fits a machine without systemd or cgroups (``proctrack/linuxproc``,
``task/none``, no accounting: ``sacct`` does not work, ``squeue``/``scontrol`` do).
Clients find it through ``SLURM_CONF`` (:attr:`LocalSlurm.env`). ``stop()`` cancels the jobs
and ends the daemons by the PIDs this object started. Needs root and the binaries that
``scripts/install_slurm.sh`` installs; :func:`unavailable_reason` says why not otherwise.

Also :class:`JobRecordingSimulation`, a test-only wrapper around a simulation that writes the
``SLURM_JOB_ID`` of the process it ran in to a file per call (workers import this module:
its folder must be on their ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detopt.atomic import write_text_atomic

__all__ = ["JobRecordingSimulation", "LocalSlurm", "unavailable_reason"]

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
START_TIMEOUT_S = 30.0


def unavailable_reason() -> str | None:
    """Why a local Slurm cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "the local Slurm test needs root (slurmd runs as SlurmUser=root)"
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return f"Slurm/munge not installed (missing {', '.join(missing)}); run scripts/install_slurm.sh as root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _total_memory_mb() -> int:
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


@dataclass
class LocalSlurm:
    """A running single-node Slurm cluster (controller and node ``localhost``) configured in ``folder``."""

    folder: Path
    cpus: int
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment variables Slurm clients (sbatch, squeue) need to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------------ start
    @classmethod
    def start(cls, folder: Path | None = None, cpus: int | None = None) -> "LocalSlurm":
        """Configure and start munged, slurmctld and slurmd; raises RuntimeError (with log tails) if the node never comes up.

        ``cpus``: the node's CPUs (default: this machine's; more than it has would drain the node).
        """
        cpus = cpus if cpus is not None else (os.cpu_count() or 1)
        # munged insists that every folder above its socket is searchable by all users
        folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="detopt-slurm-"))
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        cluster = cls(folder=folder, cpus=cpus)
        try:
            cluster._start_munge()
            cluster._write_conf()
            cluster._start_daemon("slurmctld", ["slurmctld"], folder / "slurmctld.pid")
            cluster._start_daemon("slurmd", ["slurmd", "-N", "localhost"], folder / "slurmd.pid")
            cluster._wait_for_idle_node()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_munge(self) -> None:
        key = self.folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        f = self.folder
        self._start_daemon(
            "munged",
            ["munged", f"--socket={f / 'munge.socket'}", f"--key-file={key}", f"--log-file={f / 'munged.log'}",
             f"--pid-file={f / 'munged.pid'}", f"--seed-file={f / 'munged.seed'}"],
            f / "munged.pid",
        )

    def _write_conf(self) -> None:
        f = self.folder
        for sub in ("state", "spool"):
            (f / sub).mkdir(exist_ok=True)
        lines = [
            "ClusterName=detopt-test",
            f"SlurmctldHost={socket.gethostname()}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={f / 'munge.socket'}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={int(_total_memory_mb() * 0.9)} State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n", encoding="ascii")

    def _run(self, args: list[str], timeout: float = 20.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env}
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=check)

    def _start_daemon(self, name: str, args: list[str], pid_file: Path) -> None:
        """Start a daemon (it forks into the background) and remember its PID from its PID file."""
        result = self._run(args, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed to start (exit {result.returncode}): {result.stderr.strip()}\n{self.logs()}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                self.pids[name] = int(pid_file.read_text().strip())
                return
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"{name} wrote no PID file {pid_file}\n{self.logs()}")

    def _wait_for_idle_node(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            result = self._run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
            state = result.stdout.strip()
            if result.returncode == 0 and state == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Slurm node did not become idle in {START_TIMEOUT_S:.0f} s (state {state!r})\n{self.logs()}")

    # ------------------------------------------------------------------ use
    def job_ids(self) -> list[str]:
        """IDs of the jobs the controller knows (pending, running and recently finished)."""
        out = self._run(["scontrol", "-o", "show", "job"]).stdout
        return [tok.split("=", 1)[1] for line in out.splitlines() for tok in line.split() if tok.startswith("JobId=")]

    def job_info(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` of one job as key -> value (JobName, JobState, NodeList, ...)."""
        out = self._run(["scontrol", "-o", "show", "job", job_id]).stdout
        return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)

    def logs(self, lines: int = 15) -> str:
        """The last lines of every daemon log, for failure messages."""
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.folder / name
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts)

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Cancel every job, then end slurmd, slurmctld and munged by their PIDs (TERM, then KILL)."""
        if "slurmctld" in self.pids:
            self._run(["scancel", "--full", "--partition=debug"], check=False)
            deadline = time.monotonic() + 15.0
            while time.monotonic() < deadline:
                result = self._run(["squeue", "-h", "-o", "%i"], check=False)
                if result.returncode != 0 or not result.stdout.strip():
                    break
                time.sleep(0.2)
        _terminate([self.pids.pop(n) for n in ("slurmd", "slurmctld") if n in self.pids])
        _terminate([self.pids.pop(n) for n in ("munged",) if n in self.pids])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _terminate(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM these processes together, wait for them to exit, SIGKILL what is left after ``timeout``."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class JobRecordingSimulation:
    """Test-only: runs ``simulate`` and writes ``{"slurm_job_id", "pid", "seed"}`` of this call into ``record_dir``."""

    simulate: Any
    record_dir: str

    def __call__(self, design: Mapping[str, float | str], n_events: int, seed: int) -> Any:
        events = self.simulate(design, n_events, seed)
        record = {"slurm_job_id": os.environ.get("SLURM_JOB_ID"), "pid": os.getpid(), "seed": seed, "n_events": n_events}
        write_text_atomic(Path(self.record_dir) / f"{uuid.uuid4().hex}.json", json.dumps(record))
        return events


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """``python tests/execution/slurm_cluster.py``: start the local Slurm, print its SLURM_CONF, stop it on Ctrl-C."""
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"cannot start a local Slurm: {reason}")
    cluster = LocalSlurm.start()
    print(f"Slurm is up (partition debug, node localhost, {cluster.cpus} CPUs); in another shell:", flush=True)
    print(f"    export SLURM_CONF={cluster.conf}", flush=True)
    print("Ctrl-C (or SIGTERM) stops the daemons.", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
