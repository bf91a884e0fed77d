"""EventStream: a subscription to a trail server's events, read as typed events."""

from __future__ import annotations

import os
from collections.abc import Iterator

import zmq

from trail.errors import TrailConnectionError
from trail.layer1.events import Event, Hello
from trail.layer1.sockets import EVENTS_QUEUED


class EventStream:
    """The events a server publishes: state changes, output, prompts and replies.

    Each is an :class:`~trail.layer1.events.Event` (``StateChanged``, ``Output``,
    ``Prompt``, ``Input``, ``PauseOnFailChanged``, ``ShuttingDown``); code written when
    they were dicts still reads them as such (``event["kind"]``, ``event.get("n")``).
    """

    def __init__(self, path: str, timeout: float) -> None:
        if not os.path.exists(path):
            raise TrailConnectionError(path, "the event socket file does not exist")
        self.path = path
        # Events the server sent while this subscriber lagged behind its queue (ZeroMQ
        # drops them rather than let one slow reader hold the server): seen as gaps in seq.
        self.missed = 0
        self.last_seq: int | None = None
        self._sock: zmq.Socket = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, EVENTS_QUEUED)  # with the server's, 20,000 behind
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(f"ipc://{path}")
        # The server greets each new subscription; until the greeting, events may be missed.
        while True:
            event = self.next(timeout)
            if event is None:
                self.close()
                raise TrailConnectionError(path, f"no greeting within {timeout:g} s")
            if isinstance(event, Hello):
                break

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event (a greeting included), or None after ``timeout`` seconds without
        one; ProtocolError for anything a trail server would not publish."""
        wait = None if timeout is None else int(timeout * 1000)
        if not self._sock.poll(wait, zmq.POLLIN):
            return None
        event = Event.from_json(self._sock.recv())
        if event.seq:
            if self.last_seq is not None and event.seq > self.last_seq + 1:
                self.missed += event.seq - self.last_seq - 1
            self.last_seq = event.seq
        return event

    def settle(self, published: int) -> None:
        """Count as missed the events after the last one seen, up to ``published`` (the
        server's ``info()["published"]``): the end of a burst a lagging reader lost."""
        if self.last_seq is not None and published > self.last_seq:
            self.missed += published - self.last_seq
            self.last_seq = published

    def __iter__(self) -> Iterator[Event]:
        """Every event from here on, greetings left out; it ends only by breaking out."""
        while True:
            event = self.next()
            if event is not None and not isinstance(event, Hello):
                yield event

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
