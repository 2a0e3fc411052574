"""Batch-system backends: settings checked with clear errors, the job scripts carry what the user asked for,
and two SRSO iterations of the quick example really run their simulations inside Slurm jobs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from detopt.errors import ConfigError
from detopt.execution import DaskExecutor, SerialExecutor, make_executor
from detopt.execution.clusters import BATCH_SYSTEMS, ClusterSettings, check_execution, job_script, jobqueue_kwargs
from detopt.optimize.config import load_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "examples" / "quick.yaml"


def _quick(execution: dict[str, Any]) -> dict[str, Any]:
    raw = yaml.safe_load(QUICK.read_text(encoding="utf-8"))
    raw["execution"] = execution
    return raw


def _error(execution: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_config(_quick(execution))
    return info.value


# ---------------------------------------------------------------------------- settings
def test_batch_backends_validate_with_their_cluster_block() -> None:
    config = validate_config(_quick({"backend": "slurm", "cluster": {"cores": 4, "processes": 2, "memory": "8GiB",
                                                                      "partition": "short", "maximum_jobs": 20}}))
    cluster = config.execution.cluster
    assert cluster is not None and cluster.queue == "short" and cluster.adaptive
    assert (cluster.cores, cluster.processes, cluster.minimum_jobs, cluster.maximum_jobs) == (4, 2, 0, 20)
    assert validate_config(_quick({"backend": "htcondor"})).execution.cluster is None  # defaults: 1 core, 2 GiB
    assert validate_config(_quick({"backend": "dask", "address": "tcp://10.0.0.1:8786"})).execution.backend == "dask"


@pytest.mark.parametrize(
    ("execution", "field", "text"),
    [
        ({"backend": "slurm", "cluster": {"memory": "lots"}}, "execution.cluster.memory", "4GiB"),
        ({"backend": "slurm", "cluster": {"memory": "0GB"}}, "execution.cluster.memory", "positive"),
        ({"backend": "slurm", "cluster": {"cores": 1, "processes": 2}}, "execution.cluster.processes", "<= cores (1)"),
        ({"backend": "slurm", "cluster": {"jobs": 4, "maximum_jobs": 8}}, "execution.cluster.jobs", "not both"),
        ({"backend": "pbs", "cluster": {"minimum_jobs": 5, "maximum_jobs": 3}}, "execution.cluster.minimum_jobs", "<= maximum_jobs (3)"),
        ({"backend": "slurm", "cluster": {"walltime": "2h"}}, "execution.cluster.walltime", "HH:MM:SS"),
        ({"backend": "lsf", "cluster": {"walltime": "02:00:00"}}, "execution.cluster.walltime", "LSF takes HH:MM"),
        ({"backend": "slurm", "cluster": {"cpus": 4}}, "execution.cluster.cpus", "unknown key"),
        ({"backend": "htcondor", "cluster": {"queue": "short"}}, "execution.cluster.queue", "HTCondor has no queues"),
        ({"backend": "htcondor", "cluster": {"walltime": "01:00:00"}}, "execution.cluster.walltime", "+MaxRuntime"),
        ({"backend": "htcondor", "cluster": {"job_extra_directives": ["x"]}}, "execution.cluster.job_extra_directives", "mapping"),
        ({"backend": "slurm", "cluster": {"job_extra_directives": {"a": "b"}}}, "execution.cluster.job_extra_directives", "list"),
        ({"backend": "slurm", "cluster": {"disk": "1GiB"}}, "execution.cluster.disk", "only HTCondor"),
        ({"backend": "lsf", "cluster": {"resource_spec": "x"}}, "execution.cluster.resource_spec", "only PBS"),
        ({"backend": "slurm", "cluster": {"worker_env": {"A-B": "1"}}}, "execution.cluster.worker_env", "'A-B'"),
        ({"backend": "slurm", "cluster": {"scheduler_port": 70000}}, "execution.cluster.scheduler_port", "65535"),
        ({"backend": "local", "cluster": {"cores": 2}}, "execution.cluster", "only used by the batch-system backends"),
        ({"backend": "address"}, "execution.address", "tcp://host:8786"),
        ({"backend": "kubernetes"}, "execution.backend", "'slurm', 'htcondor', 'pbs', 'lsf', 'address'"),
        ({"device": "gpu"}, "execution.device", "'auto', 'cpu' or 'cuda'"),
    ],
)
def test_bad_execution_settings_name_the_field(execution: dict[str, Any], field: str, text: str) -> None:
    err = _error(execution)
    assert err.field == field
    assert text in err.message


# ---------------------------------------------------------------------------- job scripts
_COMMON = {
    "cores": 4, "processes": 2, "memory": "8GiB", "job_script_prologue": ["module load python/3.11"],
    "worker_env": {"OMP_NUM_THREADS": "2"}, "interface": "ib0", "local_directory": "/scratch/dask",
    "log_directory": "/shared/logs", "python": "/opt/venv/bin/python", "worker_extra_args": ["--lifetime", "55m"],
}


def _lines(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines()]


def _worker_line(script: str) -> str:
    return next(line for line in _lines(script) if "distributed.cli.dask_worker" in line)


def _check_worker(script: str) -> None:
    """What every system's script must run: the user's prologue, then 2 workers x 2 threads on ib0."""
    worker = _worker_line(script)
    assert "/opt/venv/bin/python -m distributed.cli.dask_worker" in worker
    assert "--nworkers 2" in worker and "--nthreads 2" in worker and "--memory-limit 4.00GiB" in worker
    assert "--interface ib0" in worker and "--local-directory /scratch/dask" in worker and "--lifetime 55m" in worker
    assert script.index("module load python/3.11") < script.index("export OMP_NUM_THREADS=2") < script.index("dask_worker")


def test_slurm_job_script_has_the_directives_given() -> None:
    s = ClusterSettings(**_COMMON, walltime="02:00:00", partition="short", account="physics",
                        job_extra_directives=["--qos=normal", "--constraint=cpu"])
    lines = _lines(job_script("slurm", s))
    for directive in ("#SBATCH -J detopt-worker", "#SBATCH -p short", "#SBATCH -A physics", "#SBATCH --cpus-per-task=4",
                      "#SBATCH --mem=8G", "#SBATCH -t 02:00:00", "#SBATCH --qos=normal", "#SBATCH --constraint=cpu",
                      "#SBATCH -o /shared/logs/detopt-worker-%J.out"):
        assert directive in lines, directive
    _check_worker(job_script("slurm", s))


def test_pbs_job_script_has_the_directives_given() -> None:
    s = ClusterSettings(**_COMMON, walltime="02:00:00", queue="workq", account="physics",
                        resource_spec="select=1:ncpus=4:mem=8GB", job_extra_directives=["-l place=scatter"])
    lines = _lines(job_script("pbs", s))
    for directive in ("#PBS -N detopt-worker", "#PBS -q workq", "#PBS -A physics", "#PBS -l select=1:ncpus=4:mem=8GB",
                      "#PBS -l walltime=02:00:00", "#PBS -l place=scatter"):
        assert directive in lines, directive
    _check_worker(job_script("pbs", s))


def test_lsf_job_script_has_the_directives_given() -> None:
    s = ClusterSettings(**_COMMON, walltime="02:30", queue="long", account="physics", job_extra_directives=['-R "select[avx2]"'])
    lines = _lines(job_script("lsf", s))
    for directive in ("#BSUB -J detopt-worker", "#BSUB -q long", '#BSUB -P "physics"', "#BSUB -n 4", "#BSUB -W 02:30",
                      '#BSUB -R "select[avx2]"'):
        assert directive in lines, directive
    _check_worker(job_script("lsf", s))


def test_htcondor_submit_file_has_the_requests_given() -> None:
    s = ClusterSettings(**_COMMON, disk="4GiB", job_extra_directives={"+JobFlavour": '"workday"', "requirements": "OpSysMajorVer == 9"})
    script = job_script("htcondor", s)
    lines = _lines(script)
    for line in ("MY.DaskWorkerCores = 4", f"MY.DaskWorkerMemory = {8 * 2**30}", f"MY.DaskWorkerDisk = {4 * 2**30}",
                 '+JobFlavour = "workday"', "requirements = OpSysMajorVer == 9", "LogDirectory = /shared/logs"):
        assert line in lines, line
    # HTCondor runs the prologue and the worker as one shell command
    assert re.search(r"module load python/3\.11; export OMP_NUM_THREADS=2; /opt/venv/bin/python -m distributed", script)
    _check_worker(script)


def test_scheduler_options_carry_port_interface_and_dashboard() -> None:
    s = ClusterSettings(interface="ib0", scheduler_interface="eth0", scheduler_port=8786, dashboard_address=":8787")
    kwargs = jobqueue_kwargs("slurm", s)
    assert kwargs["scheduler_options"] == {"port": 8786, "dashboard_address": ":8787", "interface": "eth0"}
    assert kwargs["interface"] == "ib0" and kwargs["cores"] == 1 and kwargs["memory"] == "2GiB"
    assert jobqueue_kwargs("lsf", ClusterSettings(account="p1"))["project"] == "p1"  # LSF's name for the account
    assert jobqueue_kwargs("htcondor", ClusterSettings())["disk"] == "1GiB"


def test_example_slurm_configuration_is_valid_and_adaptive() -> None:
    config, _ = load_config(ROOT / "examples" / "quick_slurm.yaml")
    cluster = config.execution.cluster
    assert config.execution.backend == "slurm" and cluster is not None
    assert (cluster.minimum_jobs, cluster.maximum_jobs, cluster.queue) == (0, 12, "debug")
    assert "#SBATCH -p debug" in _lines(job_script("slurm", cluster))


# ---------------------------------------------------------------------------- executors
def test_make_executor_builds_a_cluster_executor_per_batch_system() -> None:
    for system in BATCH_SYSTEMS:
        executor = make_executor(system, n_workers=3, retries=2, cluster=None)
        assert isinstance(executor, DaskExecutor) and executor.cluster_factory is not None and executor.retries == 2
    assert isinstance(make_executor("serial"), SerialExecutor)
    joined = make_executor("address", address="tcp://10.0.0.1:8786")
    assert isinstance(joined, DaskExecutor) and joined.address == "tcp://10.0.0.1:8786" and joined.cluster_factory is None
    with pytest.raises(ConfigError, match="execution.cluster.queue"):
        make_executor("htcondor", cluster=ClusterSettings(queue="short"))
    with pytest.raises(ConfigError, match="execution.cluster"):
        check_execution("serial", ClusterSettings(), None)


def test_a_machine_without_the_submit_command_gets_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, condor_submit, qsub or bsub here
    for system, command in (("slurm", "sbatch"), ("htcondor", "condor_submit"), ("pbs", "qsub"), ("lsf", "bsub")):
        executor = make_executor(system, cluster=ClusterSettings())
        with pytest.raises(ConfigError, match=f"submits jobs with '{command}', which is not on PATH"):
            executor.__enter__()


def test_dask_executor_starts_the_cluster_of_its_factory_on_enter_and_closes_it_on_exit() -> None:
    from distributed import LocalCluster

    started: list[Any] = []

    def factory() -> Any:
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
        started.append(cluster)
        return cluster

    executor = DaskExecutor(retries=0, cluster_factory=factory)
    assert started == []  # nothing starts on construction
    with executor:
        out = executor.map(abs, [-3, 4])
        assert len(started) == 1 and started[0].status.name == "running"
    assert [o.value for o in out] == [3, 4]
    assert started[0].status.name == "closed"


def test_device_option_rejects_a_missing_gpu_with_one_line(tmp_path: Path) -> None:
    import torch
    from typer.testing import CliRunner

    from detopt.cli.main import app
    from detopt.optimize.run import training_device

    runner = CliRunner()
    bad = runner.invoke(app, ["optimize", str(QUICK), "--run-dir", str(tmp_path / "run"), "--device", "gpu"])
    assert bad.exit_code == 2 and bad.output.strip().splitlines()[-1].startswith("error: --device: must be auto, cpu or cuda")
    assert training_device("cpu") == "cpu"
    assert training_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        return
    no_gpu = runner.invoke(app, ["optimize", str(QUICK), "--run-dir", str(tmp_path / "run"), "--device", "cuda"])
    assert no_gpu.exit_code == 2 and "error: execution.device:" in no_gpu.output and "no CUDA device" in no_gpu.output
    assert not (tmp_path / "run").exists()  # nothing written before the error


# ---------------------------------------------------------------------------- a real Slurm
def test_a_job_slurm_refuses_is_a_clear_error_not_a_hang(local_slurm: Any) -> None:
    from detopt.execution.clusters import build_cluster

    before = set(local_slurm.job_ids())
    with pytest.raises(ConfigError, match="refused the job .sbatch failed.: sbatch: error: invalid partition specified: nope"):
        build_cluster("slurm", ClusterSettings(partition="nope", interface="lo"), default_jobs=2)
    assert set(local_slurm.job_ids()) == before  # nothing was queued


def test_two_srso_iterations_simulate_inside_slurm_jobs(local_slurm: Any, tmp_path: Path) -> None:
    """The quick example (shrunk) with backend slurm: every simulation of both iterations ran in a Slurm job."""
    import torch
    from slurm_cluster import JobRecordingSimulation

    from detopt.optimize.loop import completed_iterations
    from detopt.optimize.run import optimize_run, prepare_run

    raw = yaml.safe_load(QUICK.read_text(encoding="utf-8"))
    raw["iterations"] = 2
    # one seed per design (no common random numbers), so that a rerun task would show as a repeated seed
    raw["simulation"].update(events_per_design=100, designs_per_iteration=4, common_random_numbers=False)
    raw["optimizer"].update(max_steps=10, events=200, global_designs=0)
    raw["reconstruction"].update(epochs=3)
    raw["surrogate"].update(epochs=3, train_steps=20, ddim_steps=4)
    logs = tmp_path / "job-logs"
    raw["execution"] = {
        "backend": "slurm", "retries": 1, "torch_threads": 1, "device": "cpu",
        "cluster": {
            "cores": 1, "memory": "1GiB", "walltime": "00:10:00", "partition": "debug", "interface": "lo",
            "minimum_jobs": 1, "maximum_jobs": 2, "log_directory": str(logs),
            # the workers import slurm_cluster (JobRecordingSimulation) from this folder
            "worker_env": {"PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"},
        },
    }
    config_path = tmp_path / "quick_slurm.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    records_dir = tmp_path / "simulations"
    records_dir.mkdir()

    prepared = prepare_run(config_path, run_dir=tmp_path / "run")
    prepared.problem = dataclasses.replace(
        prepared.problem, simulate=JobRecordingSimulation(prepared.problem.simulate, str(records_dir))
    )
    threads = torch.get_num_threads()
    try:
        records = optimize_run(prepared)
    finally:
        torch.set_num_threads(threads)

    # the run's own records: two complete iterations with finite losses
    assert len(records) == 2 and completed_iterations(tmp_path / "run") == 2
    assert all(0 < r["reconstruction_loss"] < 100 for r in records)
    # every simulation (4 designs x 2 iterations, none failed) ran in a worker inside a Slurm job of ours
    calls = [json.loads(p.read_text(encoding="utf-8")) for p in records_dir.glob("*.json")]
    assert len({c["seed"] for c in calls}) == 8  # (a task Dask had to rerun would add a call with a repeated seed)
    assert all(c["n_events"] == 100 for c in calls)
    job_ids = {c["slurm_job_id"] for c in calls}
    assert None not in job_ids and os.getpid() not in {c["pid"] for c in calls}
    known = set(local_slurm.job_ids())
    assert job_ids <= known and 1 <= len(job_ids) <= len(known)
    for job_id in job_ids:
        info = local_slurm.job_info(job_id)
        assert info["JobName"] == "detopt-worker" and info["Partition"] == "debug" and info["NodeList"] == "localhost"
    # leaving the executor cancelled the jobs (no job of ours keeps running) and the jobs wrote their logs
    assert not [j for j in known if local_slurm.job_info(j)["JobState"] in ("PENDING", "RUNNING")]
    assert {f"detopt-worker-{j}.err" for j in job_ids} <= {p.name for p in logs.iterdir()}

    # where the simulations ran changes nothing: in-process simulation gives the same designs
    raw["execution"] = {"backend": "serial", "retries": 1, "torch_threads": 1, "device": "cpu"}
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    try:
        serial = optimize_run(prepare_run(config_path, run_dir=tmp_path / "run-serial"))
    finally:
        torch.set_num_threads(threads)
    for on_slurm, in_process in zip(records, serial, strict=True):
        assert on_slurm["next_values"] == pytest.approx(in_process["next_values"], rel=1e-9)
        assert on_slurm["reconstruction_loss"] == pytest.approx(in_process["reconstruction_loss"], rel=1e-9)


def test_every_configuration_in_docs_clusters_md_is_valid() -> None:
    """The execution blocks shown in docs/clusters.md validate, and their job scripts build."""
    text = (ROOT / "docs" / "clusters.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
    executions = [b["execution"] for b in blocks if isinstance(b, dict) and "execution" in b]
    backends = sorted(e["backend"] for e in executions)
    assert backends == ["address", "htcondor", "lsf", "pbs", "slurm"]
    # the Slurm block shown is the one of examples/quick_slurm.yaml, which is examples/quick.yaml otherwise
    example = yaml.safe_load((ROOT / "examples" / "quick_slurm.yaml").read_text(encoding="utf-8"))
    assert next(e for e in executions if e["backend"] == "slurm") == example["execution"]
    quick = yaml.safe_load(QUICK.read_text(encoding="utf-8"))
    assert {k: v for k, v in example.items() if k not in ("execution", "run_dir")} == {
        k: v for k, v in quick.items() if k not in ("execution", "run_dir")
    }
    for execution in executions:
        config = validate_config(_quick(execution))
        if config.execution.backend in BATCH_SYSTEMS:
            assert config.execution.cluster is not None
            assert "distributed.cli.dask_worker" in job_script(config.execution.backend, config.execution.cluster)
