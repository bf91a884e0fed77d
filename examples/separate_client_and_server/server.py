"""Serve a trail in the foreground; steer it from other processes (the other files here).

    python examples/separate_client_and_server/server.py          # until a client shuts it down
    python examples/separate_client_and_server/client.py          # a REPL: example.start(), ...
    python examples/separate_client_and_server/cli_client.py status --field State

All of them find the server at $TRAIL_EXAMPLE_SOCKET, or /tmp/trail.example.server.
"""

from __future__ import annotations

import os
import tempfile
import time

from trail import Step, TrailServer, accepts_context

socket_file = os.environ.get("TRAIL_EXAMPLE_SOCKET") or os.path.join(
    tempfile.gettempdir(), "trail.example.server")


class Context:
    def __init__(self, value: int) -> None:
        self.value = value


def reporter(letter: str, pause: float):
    """An action that takes a moment, then reports the context's value."""

    @accepts_context
    def report(context):
        time.sleep(pause)
        return f"step {letter} saw the value {context.value}"

    report.__name__ = f"step_{letter}"
    return report


a, b, c, d, e, f, g = (Step(reporter(letter, pause), **tags) for letter, pause, tags in [
    ("a", 0.5, {}), ("b", 1, {}), ("c", 0.2, {"foo": "bar"}), ("d", 1, {}), ("e", 0.5, {}),
    ("f", 0.2, {"foo": "bar"}), ("g", 1, {})])

# a, then two branches (b -> c -> d and e -> f) that meet at g.
trail = [(a, b), (a, e), (b, c), (c, d), (d, g), (e, f), (f, g)]
context = Context(42)

if __name__ == "__main__":
    server = TrailServer(trail, socket_file=socket_file, delay=0.5, context=context)
    print(server.socket_file, flush=True)
    server.serve()  # in the foreground, until a client calls shutdown
