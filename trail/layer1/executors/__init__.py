"""Executors run step actions; the manager talks to them through ``base.Executor``.

Each executor's module is imported when a run first asks for it: the Dask executor's is
heavy, and a run uses one executor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trail._lazy import lazy_names
from trail.layer1.executors.base import Executor, Kind, Message, Outcome, TrailEnvironment

if TYPE_CHECKING:
    from trail.layer1.executors.dask import DaskExecutor
    from trail.layer1.executors.process import ProcessExecutor
    from trail.layer1.executors.thread import ThreadExecutor

# Each executor by name: the module that defines it, and its class there.
EXECUTORS: dict[str, tuple[str, str]] = {
    "process": ("trail.layer1.executors.process", "ProcessExecutor"),
    "thread": ("trail.layer1.executors.thread", "ThreadExecutor"),
    "dask": ("trail.layer1.executors.dask", "DaskExecutor"),
}


def make_executor(name: str, step_output: str | None = None, dask: Any = None) -> Executor:
    """A new executor by name ('process', 'thread' or 'dask').

    ``step_output``: a file steps write their stdout/stderr to (the process executor's at
    the descriptor level; the thread executor's what its threads print). ``dask``: the
    dask executor's scheduler address or ``distributed.Client`` (default
    ``$TRAIL_DASK_ADDRESS``); connected at its first step.
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    module, class_name = EXECUTORS[name]
    new: Callable[..., Executor] = getattr(importlib.import_module(module), class_name)
    return new(step_output, dask) if name == "dask" else new(step_output)


__getattr__, __dir__ = lazy_names(globals(), {
    class_name: module for module, class_name in EXECUTORS.values()})

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
