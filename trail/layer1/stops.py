"""Stopped runs, heard until they end: a run interrupted or timed out may still say how
its work elsewhere stopped (a command on a host: whether the host confirmed it ended).
What it says meanwhile is kept; its end is published as a ``stopped`` event."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trail.layer1 import events, values
from trail.layer1.executors import Kind, Message
from trail.layer1.executors.base import StopReport

if TYPE_CHECKING:
    from trail.layer1.records import StepRecord
    from trail.layer1.timers import Timers

log = logging.getLogger(__name__)

# Seconds a stopped run that stops its own commands is listened to beyond the time it
# said that takes: what it says meanwhile (how its work on a host ended) is kept.
STOP_REPORT_MARGIN = 1.0
# What marks a line from a stopped run that comes after its step started running again.
STOPPED_RUN = "[stopped run]"


class _Stopping:
    """A run that was stopped, until it ends or is given up."""

    __slots__ = ("record", "until", "reports", "returned")

    def __init__(self, record: StepRecord, until: float) -> None:
        self.record = record
        self.until = until  # time.monotonic() when it is given up
        self.reports: list[StopReport] = []
        self.returned = False  # its action function returned or raised


class StoppedRuns:
    """The stopped runs of one Run not over yet (``stopping``), and the ``stopped``
    events of those that are (``stopped``)."""

    def __init__(self, timers: Timers, output: Callable[[StepRecord, Any], None],
                 publish: Callable[[events.Event], None]) -> None:
        self._timers = timers
        self._output = output  # a line of a step's output: kept, journaled, published
        self._publish = publish
        self.stopping: dict[int, _Stopping] = {}  # run id -> a stopped run not yet over
        self.stopped: list[events.Stopped] = []  # each stopped run once over, as published

    def begin(self, record: StepRecord, run_id: int, wait: float) -> None:
        """Hear run ``run_id`` for up to ``wait`` seconds more, then give it up."""
        self.stopping[run_id] = _Stopping(record, time.monotonic() + wait)
        self._timers.call_later(wait, lambda: self.over(run_id, ended=False))

    def take(self, message: Message) -> bool:
        """Handle a message of a stopped run (True), or say it is not one (False). Its
        output and stop reports are kept; its result is not (the step is Interrupted, or
        failed for its timeout)."""
        stopping = self.stopping.get(message.run_id)
        if stopping is None:
            return False
        if message.kind == Kind.OUTPUT:
            said = values.clipped(message.payload)
            self._output(stopping.record, self._marked(stopping, message.run_id, said))
        elif message.kind == Kind.STOP and isinstance(message.payload, StopReport):
            stopping.reports.append(message.payload)
            line = stop_line(message.payload)
            self._output(stopping.record, self._marked(stopping, message.run_id, line))
        elif message.kind == Kind.RESULT:
            stopping.returned = True
        elif message.kind == Kind.EXIT:
            self.over(message.run_id, ended=stopping.returned or message.payload == "finished")
        return True

    @staticmethod
    def _marked(stopping: _Stopping, run_id: int, said: Any) -> Any:
        """A line of a stopped run, marked as such once its step runs again (a rerun's
        output is the step's output now: this line is not the rerun's)."""
        if stopping.record.run_id == run_id:
            return said
        return f"{STOPPED_RUN} {said if isinstance(said, str) else values.dumps(said)}"

    def over(self, run_id: int, ended: bool) -> None:
        """A stopped run ended (or is given up, ``ended`` False): publish what it said."""
        stopping = self.stopping.pop(run_id, None)
        if stopping is None:
            return
        record = stopping.record
        reports = [{"where": r.where, "confirmed": r.confirmed, "detail": r.detail}
                   for r in stopping.reports]
        log.info("step %s %s: its stopped run %s %s", record.n, record.name, run_id,
                 "ended" if ended else "was given up")
        event = events.Stopped(n=record.n, name=record.name, ended=ended, reports=reports)
        self.stopped.append(event)
        self._publish(event)

    @property
    def deadline(self) -> float:
        """Seconds the stopped runs may still take to end and say how it went."""
        return max((s.until for s in self.stopping.values()), default=0.0) - time.monotonic()


def stop_line(report: StopReport) -> str:
    """A stop report as the step's output line."""
    where = f" on {report.where}" if report.where else ""
    said = "stopped" if report.confirmed else "stop not confirmed"
    return f"[trail] {said}{where}: {report.detail}"
