"""Batch-system clusters for the simulations: Slurm, HTCondor, PBS and LSF through dask-jobqueue.

The run configuration's ``execution.cluster`` block (:class:`ClusterSettings`) says what
one batch job asks for (cores, memory, walltime, queue or partition, account, extra
directives, a job-script prologue) and how many jobs to keep: a fixed number (``jobs``)
or adaptive scaling between ``minimum_jobs`` and ``maximum_jobs``. Each job runs Dask
worker processes that connect back to a scheduler in the driver process; simulations run
on those workers, training and optimization stay in the driver (DESIGN.md section 6).

Nothing here starts anything on import or construction: :func:`cluster_factory` returns
a callable that a :class:`~detopt.execution.DaskExecutor` calls on ``__enter__`` (the
cluster is closed, and its jobs cancelled, on ``__exit__``). :func:`job_script` shows the
script that would be submitted, without a scheduler. dask-jobqueue is imported only when
a cluster or a job script is built.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from detopt.errors import ConfigError

__all__ = [
    "BATCH_SYSTEMS",
    "BatchSystem",
    "ClusterSettings",
    "build_cluster",
    "check_execution",
    "cluster_factory",
    "job_script",
    "jobqueue_kwargs",
]

BatchSystem = Literal["slurm", "htcondor", "pbs", "lsf"]
BATCH_SYSTEMS: tuple[str, ...] = ("slurm", "htcondor", "pbs", "lsf")
"""The batch systems supported through dask-jobqueue (backend names in ``execution.backend``)."""

_CLUSTER_CLASS = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster", "lsf": "LSFCluster"}
_FIELD = "execution.cluster"
_WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # Slurm accepts D-HH:MM:SS, HH:MM:SS, MM:SS, MM
_LSF_WALLTIME = re.compile(r"^\d+(:\d{1,2})?$")  # LSF -W: [HH:]MM
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClusterSettings(BaseModel):
    """What one batch job asks for, and how many jobs to run (``execution.cluster`` in the run configuration).

    Sizes are per job: ``cores`` CPU cores and ``memory`` (e.g. ``"4GiB"``) shared by ``processes``
    Dask worker processes. ``None`` leaves a setting to the batch system's default (or to the
    user's dask-jobqueue configuration file).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cores: int = Field(1, ge=1)
    processes: int = Field(1, ge=1)
    memory: str = "2GiB"
    #: Wall-clock limit of each job: HH:MM:SS on Slurm and PBS, HH:MM on LSF; HTCondor has none (use job_extra_directives).
    walltime: str | None = None
    #: Slurm partition (``partition`` is accepted too), PBS/LSF queue (HTCondor: none).
    queue: str | None = Field(None, validation_alias=AliasChoices("queue", "partition"))
    #: Account (Slurm -A, PBS -A) or project (LSF -P) the jobs are charged to.
    account: str | None = None
    #: Scratch disk per job (HTCondor only; default 1GiB there).
    disk: str | None = None
    #: PBS only: the -l resource line (e.g. "select=1:ncpus=4:mem=8GB").
    resource_spec: str | None = None
    #: Extra scheduler directives: a list of lines (Slurm, PBS, LSF: "--qos=short") or, for HTCondor,
    #: submit-description keys to values ({"+JobFlavour": '"workday"'}).
    job_extra_directives: list[str] | dict[str, str] | None = None
    #: Shell lines run at the start of each job before the worker starts (module load, source venv/bin/activate).
    job_script_prologue: list[str] = Field(default_factory=list)
    #: Environment variables exported in each job (after the prologue).
    worker_env: dict[str, str] = Field(default_factory=dict)
    #: Extra arguments of the worker command, e.g. ["--lifetime", "55m", "--lifetime-stagger", "4m"].
    worker_extra_args: list[str] = Field(default_factory=list)
    #: Network interface of the workers and the scheduler (e.g. "ib0", "eth0"; "lo" on one machine).
    interface: str | None = None
    #: Network interface of the scheduler (the driver) if it differs from the workers' (login nodes).
    scheduler_interface: str | None = None
    #: Port the scheduler listens on; 0 picks a free one (set it where a firewall allows only known ports).
    scheduler_port: int = Field(0, ge=0, le=65535)
    #: Where the scheduler serves its dashboard (":8787" to reach it through an SSH tunnel); ":0" picks a free port.
    dashboard_address: str = ":0"
    #: Folder for the workers' spill files on the compute node (e.g. "$TMPDIR" or "/scratch").
    local_directory: str | None = None
    #: Folder for the batch jobs' stdout/stderr files (on a shared file system).
    log_directory: str | None = None
    #: Python interpreter the jobs run (default: the driver's, which must be reachable from the nodes).
    python: str | None = None
    job_name: str = "detopt-worker"
    #: A fixed number of jobs (default: execution.n_workers); not together with maximum_jobs.
    jobs: int | None = Field(None, ge=1)
    #: Adaptive scaling: keep between minimum_jobs and maximum_jobs jobs, following the queue of simulations.
    minimum_jobs: int = Field(0, ge=0)
    maximum_jobs: int | None = Field(None, ge=1)

    @field_validator("memory", "disk")
    @classmethod
    def _bytes(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from dask.utils import parse_bytes

        try:
            size = parse_bytes(value)
        except (ValueError, TypeError):
            raise ValueError("must be a size such as '4GiB' or '500MB'") from None
        if size <= 0:
            raise ValueError("must be a positive size such as '4GiB'")
        return value

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str | None) -> str | None:
        if value is not None and not _WALLTIME.match(value):
            raise ValueError("must be HH:MM:SS (Slurm/PBS) or HH:MM (LSF)")
        return value

    @field_validator("worker_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"environment variable names must match [A-Za-z_][A-Za-z0-9_]*, not {bad[0]!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ClusterSettings":
        if self.processes > self.cores:
            raise ConfigError(f"{_FIELD}.processes", f"must be <= cores ({self.cores}): each worker process needs a core, got {self.processes}")
        if self.jobs is not None and self.maximum_jobs is not None:
            raise ConfigError(f"{_FIELD}.jobs", "give either a fixed number of jobs or maximum_jobs (adaptive scaling), not both")
        if self.maximum_jobs is not None and self.minimum_jobs > self.maximum_jobs:
            raise ConfigError(
                f"{_FIELD}.minimum_jobs", f"must be <= maximum_jobs ({self.maximum_jobs}), got {self.minimum_jobs}"
            )
        return self

    @property
    def adaptive(self) -> bool:
        """True when the number of jobs follows the work between minimum_jobs and maximum_jobs."""
        return self.maximum_jobs is not None


def check_execution(backend: str, cluster: ClusterSettings | None, address: str | None) -> None:
    """Check that the execution settings fit together (backend, cluster block, address); raises ConfigError."""
    if backend in ("address", "dask"):
        if not address:
            raise ConfigError("execution.address", f"backend {backend!r} needs the scheduler address (tcp://host:8786)")
    if cluster is None:
        return
    if backend not in BATCH_SYSTEMS:
        raise ConfigError(
            _FIELD, f"only used by the batch-system backends ({', '.join(BATCH_SYSTEMS)}), not by backend {backend!r}"
        )
    _check_for_system(backend, cluster)


def _check_for_system(system: str, s: ClusterSettings) -> None:
    """The settings a batch system has no use for, or needs in its own form."""
    name = {"slurm": "Slurm", "htcondor": "HTCondor", "pbs": "PBS", "lsf": "LSF"}[system]
    if system == "htcondor":
        for key, hint in (
            ("queue", "HTCondor has no queues; select machines with job_extra_directives, e.g. {requirements: '...'}"),
            ("account", "HTCondor has no accounts here; use job_extra_directives, e.g. {accounting_group: group_x}"),
            ("walltime", "HTCondor has no walltime; use job_extra_directives, e.g. {'+MaxRuntime': '3600'}"),
        ):
            if getattr(s, key) is not None:
                raise ConfigError(f"{_FIELD}.{key}", hint)
        if s.job_extra_directives is not None and not isinstance(s.job_extra_directives, dict):
            raise ConfigError(
                f"{_FIELD}.job_extra_directives",
                "HTCondor takes a mapping of submit-description keys to values, e.g. {'+JobFlavour': '\"workday\"'}",
            )
    else:
        if isinstance(s.job_extra_directives, dict):
            raise ConfigError(f"{_FIELD}.job_extra_directives", f"{name} takes a list of directive lines, e.g. ['--qos=short']")
        if s.disk is not None:
            raise ConfigError(f"{_FIELD}.disk", f"only HTCondor requests disk; {name} does not")
    if s.resource_spec is not None and system != "pbs":
        raise ConfigError(f"{_FIELD}.resource_spec", f"only PBS takes a resource_spec; {name} does not")
    if system == "lsf" and s.walltime is not None and not _LSF_WALLTIME.match(s.walltime):
        raise ConfigError(f"{_FIELD}.walltime", f"LSF takes HH:MM (bsub -W), got {s.walltime!r}")


def _prologue(s: ClusterSettings) -> list[str]:
    return [*s.job_script_prologue, *(f"export {k}={shlex.quote(v)}" for k, v in s.worker_env.items())]


def _job_kwargs(system: str, s: ClusterSettings) -> dict[str, Any]:
    """Keyword arguments of dask-jobqueue's job class (what goes into the job script)."""
    _check_for_system(system, s)
    kwargs: dict[str, Any] = {
        "cores": s.cores,
        "processes": s.processes,
        "memory": s.memory,
        "job_name": s.job_name,
        "job_script_prologue": _prologue(s),
        "worker_extra_args": list(s.worker_extra_args),
    }
    optional: dict[str, Any] = {
        "interface": s.interface,
        "local_directory": s.local_directory,
        "log_directory": s.log_directory,
        "python": s.python,
        "walltime": s.walltime,
        "job_extra_directives": s.job_extra_directives,
    }
    if system in ("slurm", "pbs"):
        optional.update(queue=s.queue, account=s.account)
    if system == "pbs":
        optional["resource_spec"] = s.resource_spec
    if system == "lsf":
        optional.update(queue=s.queue, project=s.account)
    if system == "htcondor":
        optional["disk"] = s.disk if s.disk is not None else "1GiB"
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    return kwargs


def jobqueue_kwargs(system: str, settings: ClusterSettings) -> dict[str, Any]:
    """Keyword arguments of dask-jobqueue's ``<System>Cluster`` for these settings (job and scheduler)."""
    kwargs = _job_kwargs(system, settings)
    scheduler: dict[str, Any] = {"port": settings.scheduler_port, "dashboard_address": settings.dashboard_address}
    if settings.scheduler_interface is not None:
        scheduler["interface"] = settings.scheduler_interface
    kwargs["scheduler_options"] = scheduler
    return kwargs


def _cluster_class(system: str) -> Any:
    if system not in _CLUSTER_CLASS:
        raise ConfigError("execution.backend", f"must be one of {', '.join(BATCH_SYSTEMS)} for a batch cluster, got {system!r}")
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigError(
            "execution.backend", f"backend {system!r} needs dask-jobqueue (pip install dask-jobqueue)"
        ) from None
    return getattr(dask_jobqueue, _CLUSTER_CLASS[system])


def job_script(system: str, settings: ClusterSettings, scheduler_address: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script one job of this cluster would submit (no scheduler is started)."""
    cls = _cluster_class(system)
    return str(cls.job_cls(scheduler=scheduler_address, name="detopt", **_job_kwargs(system, settings)).job_script())


def build_cluster(system: str, settings: ClusterSettings, default_jobs: int = 1) -> Any:
    """Start the dask-jobqueue cluster (its scheduler runs in this process) and ask for its jobs.

    Adaptive when ``settings.maximum_jobs`` is set, else ``settings.jobs`` (or ``default_jobs``) jobs.
    """
    cls = _cluster_class(system)
    submit = str(cls.job_cls.submit_command)
    if shutil.which(submit) is None:  # else dask-jobqueue only logs the failure and the run waits for workers forever
        raise ConfigError(
            "execution.backend",
            f"backend {system!r} submits jobs with {submit!r}, which is not on PATH here; "
            "run detopt optimize on a machine that can submit jobs (a login or submit node)",
        )
    cluster = cls(**jobqueue_kwargs(system, settings))
    try:
        # Submit the first jobs now and wait for the submit command: a job the batch system refuses (unknown
        # partition, too much memory) becomes a clear error here instead of a run that waits for workers forever.
        first = max(settings.minimum_jobs, 1) if settings.adaptive else (settings.jobs or default_jobs)
        _submit_first_jobs(cluster, first, submit)
        if settings.adaptive:
            cluster.adapt(minimum_jobs=settings.minimum_jobs, maximum_jobs=settings.maximum_jobs)
    except BaseException:
        cluster.close()
        raise
    return cluster


class _ErrorCapture(logging.Handler):
    """Collects the exceptions logged while the first jobs are submitted (dask logs, not raises, a failed submission)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(str(record.exc_info[1]))


def _submit_first_jobs(cluster: Any, jobs: int, submit: str) -> None:
    """``cluster.scale(jobs=jobs)`` and wait until the submit command has run; ConfigError with its stderr if it failed.

    Relies on distributed's SpecCluster: ``_correct_state`` (what ``scale`` schedules) serializes on a lock, so
    awaiting a second call waits for the first; a job whose submission failed is left without a ``job_id``.
    """
    capture = _ErrorCapture()
    loggers = [logging.getLogger(name) for name in ("tornado.application", "distributed", "asyncio")]
    for logger in loggers:
        logger.addHandler(capture)
    try:
        cluster.scale(jobs=jobs)
        cluster.sync(cluster._correct_state)
    finally:
        for logger in loggers:
            logger.removeHandler(capture)
    failed = [name for name, job in cluster.workers.items() if getattr(job, "job_id", None) is None]
    if not failed:
        return
    from distributed.core import Status

    for name in failed:  # never submitted: nothing to cancel; marked failed so that closing the cluster accepts them
        cluster.workers.pop(name).status = Status.failed
        cluster.worker_spec.pop(name, None)
    detail = next((e for e in capture.errors if submit in e), capture.errors[0] if capture.errors else "")
    stderr = detail.split("stderr:", 1)[-1].strip() if detail else "no message; see the log above"
    raise ConfigError(
        "execution.cluster", f"the batch system refused the job ({submit} failed): {' '.join(stderr.split())}"
    )


def cluster_factory(system: str, settings: ClusterSettings | None = None, default_jobs: int = 1) -> Callable[[], Any]:
    """A callable that starts the cluster when called (by ``DaskExecutor.__enter__``); checks the settings now."""
    settings = settings if settings is not None else ClusterSettings()
    if system not in BATCH_SYSTEMS:
        raise ConfigError("execution.backend", f"must be one of {', '.join(BATCH_SYSTEMS)} for a batch cluster, got {system!r}")
    _check_for_system(system, settings)
    return partial(build_cluster, system, settings, default_jobs)
