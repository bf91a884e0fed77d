"""Executors run step actions; the manager talks to them through ``base.Executor``."""

from trail.layer1.executors.base import Executor, Kind, Message, Outcome, TrailEnvironment
from trail.layer1.executors.process import ProcessExecutor
from trail.layer1.executors.thread import ThreadExecutor

EXECUTORS: dict[str, type[Executor]] = {
    ProcessExecutor.name: ProcessExecutor,
    ThreadExecutor.name: ThreadExecutor,
}


def make_executor(name: str, step_output: str | None = None) -> Executor:
    """A new executor by name ('process' or 'thread').

    ``step_output``: a file steps write their stdout/stderr to (the process executor's at
    the descriptor level; the thread executor's what its threads print).
    """
    if name == ProcessExecutor.name:
        return ProcessExecutor(step_output)
    if name == ThreadExecutor.name:
        return ThreadExecutor(step_output)
    raise ValueError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "Executor",
    "Kind",
    "Message",
    "Outcome",
    "ProcessExecutor",
    "ThreadExecutor",
    "TrailEnvironment",
    "make_executor",
]
