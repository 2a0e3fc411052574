"""Execution of independent simulation tasks: in-process or on Dask (LocalCluster by default)."""

from detopt.execution.executors import DaskExecutor, Executor, Outcome, SerialExecutor, TaskTimeout, make_executor

__all__ = ["DaskExecutor", "Executor", "Outcome", "SerialExecutor", "TaskTimeout", "make_executor"]
