"""Executors run step actions; the manager talks to them through ``base.Executor``."""

from trail.layer1.executors.base import Executor, Kind, Message, Outcome, TrailEnvironment
from trail.layer1.executors.process import ProcessExecutor
from trail.layer1.executors.thread import ThreadExecutor

EXECUTORS: dict[str, type[Executor]] = {
    ProcessExecutor.name: ProcessExecutor,
    ThreadExecutor.name: ThreadExecutor,
}


def make_executor(name: str) -> Executor:
    """A new executor by name ('process' or 'thread')."""
    try:
        return EXECUTORS[name]()
    except KeyError:
        raise ValueError(
            f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}"
        ) from None


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
