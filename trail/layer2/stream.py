"""EventStream: a subscription to a trail server's events."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import zmq

from trail.errors import ProtocolError, TrailConnectionError


class EventStream:
    """The events a server publishes: state changes, output, prompts and replies.

    Each event is a dict with ``seq``, ``time``, ``kind`` ('state', 'output', 'prompt',
    'input'), ``n`` and ``name``, and for a state change ``state``, ``previous`` and
    ``cause``; for a message, ``message``.
    """

    def __init__(self, path: str, timeout: float) -> None:
        if not os.path.exists(path):
            raise TrailConnectionError(path, "the event socket file does not exist")
        self.path = path
        self._sock: zmq.Socket = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(f"ipc://{path}")
        # The server greets each new subscription; until the greeting, events may be missed.
        while True:
            event = self.next(timeout)
            if event is None:
                self.close()
                raise TrailConnectionError(path, f"no greeting within {timeout:g} s")
            if event["kind"] == "hello":
                break

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds without one."""
        wait = None if timeout is None else int(timeout * 1000)
        if not self._sock.poll(wait, zmq.POLLIN):
            return None
        data = self._sock.recv()
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ProtocolError(f"the server published an event that is not JSON: "
                                f"{exc}") from exc

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            event = self.next()
            if event is not None and event["kind"] != "hello":
                yield event

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
