"""trail's engine: the manager, executors, the table of calls, handlers, wire, transports.

Imports trail.core, never trail.layer2.
"""

from __future__ import annotations

from typing import Any

from trail.core.dag import make_trail_graph
from trail.layer1 import sockets
from trail.layer1.executors import TrailEnvironment
from trail.layer1.manager import StepRecord, TrailManager
from trail.layer1.wire import PROTOCOL_VERSION, Call, Reply, Request, StatusField


def trail_manager(
    trail_definition: Any,
    socket_file: str,
    context: Any = None,
    executor: str = "process",
) -> None:
    """Serve a trail at ``socket_file`` in the foreground until a shutdown call.

    The layer-1 entry point; TrailServer wraps it with socket naming and a threaded mode.
    """
    graph = make_trail_graph(trail_definition)
    served = sockets.ServerSockets(socket_file)
    try:
        TrailManager(graph, served.api, served.events, context, executor).run()
    finally:
        served.close()


__all__ = [
    "PROTOCOL_VERSION",
    "Call",
    "Reply",
    "Request",
    "StatusField",
    "StepRecord",
    "TrailEnvironment",
    "TrailManager",
    "trail_manager",
]
