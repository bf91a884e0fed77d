"""The dask executor: each run a task on a Dask cluster, the step in a child process on the worker.

Dask cannot stop a running task, so the task never runs the step itself. Two sides:

* The trail's (``executor.py``, ``links.py``): ``DaskExecutor`` submits each run as a task,
  serves the workers' links on a thread of its own and hands what the steps say to the loop;
  ``stop_orphans`` is a take-up's look for steps a crashed server left running.
* The worker's (``worker.py``, ``agent.py``): the task hands its step to the worker's agent,
  a small process that asks the trail for the go, forks the step (from a child forked ahead
  of time), relays its output, prompts and outcome, and stops its process groups on the
  trail's word or when the trail's server is gone.

``wire.py`` is what they say to each other. Workers need trail installed and must be able to
reach the trail's host. Functions go with cloudpickle, checked at submission.
"""

from trail.layer1.executors.dask.executor import (
    ADDRESS_VARIABLE,
    CALLBACK_VARIABLE,
    DaskExecutor,
    dask_missing,
    stop_orphans,
)

__all__ = ["ADDRESS_VARIABLE", "CALLBACK_VARIABLE", "DaskExecutor", "dask_missing",
           "stop_orphans"]
