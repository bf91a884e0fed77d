"""Testing aids: a clock that moves only when told, and a trail served in-process.

``InProcessTrail`` runs a trail's loop in the test's own thread, without sockets: its
``client`` is an ordinary TrailClient whose transport hands each request straight to the
run's handlers, and time moves only by ``clock.advance``. So retries, back-off and
timeouts are tested without sleeping, and layer1 without ZeroMQ sockets::

    trail = InProcessTrail(Step(flaky, retries=2, retry_delay=30))
    trail.client.start()
    trail.run_until(lambda: trail.state("flaky") == "Waiting")
    trail.advance(30)  # the retry is due: no sleep
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from trail.core.dag import make_trail_graph
from trail.errors import TrailError
from trail.layer1.api import handle
from trail.layer1.events import Event
from trail.layer1.loop import Loop
from trail.layer1.run import Run
from trail.layer1.settings import Settings
from trail.layer1.timers import Timers
from trail.layer1.transport import InProcessTransport
from trail.layer2.client import TrailClient


class MockClock:
    """A monotonic clock for a Run's timers that moves only by ``advance``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.now += seconds


class InProcessTrail:
    """A trail served in this thread on a MockClock; steer it through ``client``.

    Steps run in threads by default (``executor="process"`` forks as a server would). The
    events the run publishes are kept in ``events``.
    """

    def __init__(self, definition: Any, context: Any = None, *,
                 settings: Settings | None = None, clock: MockClock | None = None) -> None:
        self.clock = clock or MockClock()
        self.run = Run(make_trail_graph(definition), context,
                       settings or Settings(executor="thread", random_fraction=lambda: 0.5),
                       timers=Timers(self.clock))
        self.run.outbox.listening = True
        self.events: list[Event] = []
        self.loop = Loop(self.run, on_event=self.events.append)
        self.client = TrailClient("in-process", transport=InProcessTransport(self._handle))

    def _handle(self, body: bytes) -> bytes:
        reply = handle(self.run, body)
        self.loop.flush()  # journal, publish: what a loop's wake-up does after serving
        return reply.to_json()

    def pump(self, wait: float = 0.0) -> None:
        """One wake-up of the loop, waiting up to ``wait`` real seconds for a step's word
        (not at all while steps wait to be started: a wake-up starts at most a few
        hundred)."""
        self.loop.turn(0 if self.run.busy else int(wait * 1000))

    def advance(self, seconds: float) -> None:
        """Move the clock on and let due timers fire."""
        self.clock.advance(seconds)
        self.pump()

    def run_until(self, done: Callable[[], bool], what: str = "the condition",
                  timeout: float = 30.0) -> None:
        """Pump until ``done()``; TrailError after ``timeout`` real seconds (steps in
        threads or processes report in real time; only timers follow the MockClock)."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TrailError(f"{what} did not happen within {timeout:g} s: "
                                 f"{self.states()}")
            self.pump(0.05)

    def state(self, name: str) -> str:
        return next(r.state.value for r in self.run.records if r.name == name)

    def states(self) -> dict[str, str]:
        return {record.name: record.state.value for record in self.run.records}

    def close(self) -> None:
        """Interrupt what runs and stop the executors."""
        self.run.close()
        self.loop.flush()

    def __enter__(self) -> InProcessTrail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["InProcessTrail", "MockClock"]
