"""trail's engine: opening a run, its loop and state, executors, the journal, the table
of calls and their handlers, the wire and transports.

Imports trail.core, never trail.layer2. The loop (``loop.py``) is the I/O shell around a
Run (``run.py``: records, transitions, scheduling, timers), opened by ``engine.py``.
"""

from __future__ import annotations

from typing import Any

from trail._lazy import lazy_names

# Loaded when first used: a `trail` command that only speaks the API (trail.layer1.calls)
# does not load the engine.
_LAZY: dict[str, str] = {
    "Engine": "trail.layer1.engine",
    "open_engine": "trail.layer1.engine",
    "TrailEnvironment": "trail.layer1.executors",
    "StepRecord": "trail.layer1.records",
    "Run": "trail.layer1.run",
    "Settings": "trail.layer1.settings",
    "PROTOCOL_VERSION": "trail.layer1.wire",
    "Call": "trail.layer1.wire",
    "Reply": "trail.layer1.wire",
    "Request": "trail.layer1.wire",
    "StatusField": "trail.layer1.wire",
}


def trail_manager(
    trail_definition: Any,
    socket_file: str,
    context: Any = None,
    executor: str = "process",
    journal: str | bool | None = False,
) -> None:
    """Serve a trail at ``socket_file`` in the foreground until a shutdown call.

    The layer-1 entry point (AutoTrail's name); TrailServer opens runs the same way and
    adds socket naming, a threaded mode and the journal by default.
    """
    from trail.core.bulk import bulk_build
    from trail.core.dag import make_trail_graph, steps_in_order
    from trail.layer1.engine import open_engine
    from trail.layer1.settings import Settings

    with bulk_build():  # a trail of 100,000 steps makes a million objects
        graph = make_trail_graph(trail_definition)
        name = steps_in_order(graph)[0].name
        engine = open_engine(graph, socket_file, context, Settings(executor=executor),
                             name=name, journal=journal)
    engine.serve()


__all__ = [
    "PROTOCOL_VERSION",
    "Call",
    "Engine",
    "Reply",
    "Request",
    "Run",
    "Settings",
    "StatusField",
    "StepRecord",
    "TrailEnvironment",
    "open_engine",
    "trail_manager",
]

__getattr__, __dir__ = lazy_names(globals(), _LAZY)
