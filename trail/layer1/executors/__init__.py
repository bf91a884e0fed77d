"""Executors run step actions; the manager talks to them through ``base.Executor``."""

from typing import Any

from trail.layer1.executors.base import Executor, Kind, Message, Outcome, TrailEnvironment
from trail.layer1.executors.dask import DaskExecutor
from trail.layer1.executors.process import ProcessExecutor
from trail.layer1.executors.thread import ThreadExecutor

EXECUTORS: dict[str, type[Executor]] = {
    ProcessExecutor.name: ProcessExecutor,
    ThreadExecutor.name: ThreadExecutor,
    DaskExecutor.name: DaskExecutor,
}


def make_executor(name: str, step_output: str | None = None, dask: Any = None) -> Executor:
    """A new executor by name ('process', 'thread' or 'dask').

    ``step_output``: a file steps write their stdout/stderr to (the process executor's at
    the descriptor level; the thread executor's what its threads print). ``dask``: the
    dask executor's scheduler address or ``distributed.Client`` (default
    ``$TRAIL_DASK_ADDRESS``); connected at its first step.
    """
    if name == ProcessExecutor.name:
        return ProcessExecutor(step_output)
    if name == ThreadExecutor.name:
        return ThreadExecutor(step_output)
    if name == DaskExecutor.name:
        return DaskExecutor(step_output, dask)
    raise ValueError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "DaskExecutor",
    "Executor",
    "Kind",
    "Message",
    "Outcome",
    "ProcessExecutor",
    "ThreadExecutor",
    "TrailEnvironment",
    "make_executor",
]
