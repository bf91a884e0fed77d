"""The notifier: a client of the run's event stream, inside the server process, that turns
what happens into notices (failed, waiting, overdue, escalated, finished) and hands them to
the courier. It never calls into the loop's thread except through the socket."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trail.core.dag import TrailGraph, below_failures, n_of, progeny, steps_in_order, tags_of
from trail.core.states import State
from trail.errors import TrailError
from trail.layer1.calls import StatusField
from trail.layer1.events import Prompt, ShuttingDown, StateChanged, StepEvent
from trail.layer2.mirror import StatusMirror
from trail.layer2.notify import messages
from trail.layer2.notify.courier import Courier
from trail.layer2.notify.destinations import (
    ESCALATED,
    FAILED,
    WAITING,
    Destination,
    DestinationError,
    destination,
)
from trail.layer2.notify.ledger import RATE_LIMITED
from trail.layer2.notify.messages import Notice, RunFacts

log = logging.getLogger(__name__)

FIELDS = (StatusField.STATE, StatusField.RETURN_VALUE, StatusField.OUTPUT_MESSAGES,
          StatusField.PROMPT_MESSAGES, StatusField.STARTED_AT, StatusField.FINISHED_AT)
RATE_LIMIT = (3, 600.0)  # at most 3 notices of one kind for one step in 600 s
POLL = 0.5  # seconds: how soon a stop is noticed
_FAILED_STATES = (State.FAILED.value, State.PAUSED_ON_FAIL.value)
_END_FAILURES = (State.FAILED.value, State.BLOCKED.value)


@dataclass
class StepSettings:
    """A step's notification tags: ``notify`` (URLs or names of destinations),
    ``warn_after`` and ``escalate_after`` (seconds)."""

    destinations: list[Destination]
    names: frozenset[str]
    warn_after: float | None
    escalate_after: float | None


def step_settings(graph: TrailGraph) -> dict[int, StepSettings]:
    """Each step's settings from its tags; a bad one is logged, saying which step, and
    left out: the run goes on."""
    found = {}
    for step in steps_in_order(graph):
        n, tags = n_of(graph, step), tags_of(graph, step)
        where = f"step {n} {step.name!r}"
        destinations, names = [], set()
        entries = tags.get("notify") or []
        for i, entry in enumerate([entries] if isinstance(entries, (str, dict)) else entries):
            if isinstance(entry, str) and "://" not in entry:
                names.add(entry.strip().lower())
                continue
            try:
                destinations.append(destination(entry, f"{where} notify entry {i + 1}"))
            except DestinationError as exc:
                log.warning("notifications: %s", exc)
        found[n] = StepSettings(destinations, frozenset(names),
                                _seconds(tags.get("warn_after"), "warn_after", where),
                                _seconds(tags.get("escalate_after"), "escalate_after", where))
    return found


def _seconds(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    log.warning("notifications: %s: %s must be a number of seconds >= 0, not %r; ignored",
                where, name, value)
    return None


@dataclass
class _Waiting:
    """A step that waits for a person, since when, and what was said about it."""

    since: float
    notice: Notice
    escalated: bool = False


class Notifier:
    """Follows one run's events on a thread of its own; see the module docstring."""

    def __init__(self, facts: RunFacts, graph: TrailGraph, destinations: Sequence[Destination],
                 courier: Courier, *, clock: Callable[[], float] = time.time,
                 timeout: float = 10.0) -> None:
        self.facts = facts
        self.destinations = list(destinations)
        self.courier = courier
        self.clock = clock
        self.timeout = timeout
        self.steps = step_settings(graph)
        self.graph = graph
        self._step_of = {n_of(graph, s): s for s in steps_in_order(graph)}
        # (n, failed?) -> the steps a failure (or a block) there cuts off
        self._below: dict[tuple[int, bool], set[int]] = {}
        self.mirror = StatusMirror(FIELDS)
        self._told: set[str] = set()
        self._runs: dict[int, tuple[Any, Any]] = {}  # n -> (Started at, its run's name)
        self._waiting: dict[int, _Waiting] = {}
        self._overdue: dict[int, tuple[float, str]] = {}
        self._recent: dict[tuple[int, str], deque[float]] = {}
        self._finished = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once the notifier follows the stream

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="trail-notifier",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _follow(self) -> None:
        from trail.layer2.client import TrailClient

        try:
            client = TrailClient(self.facts.socket_file, timeout=self.timeout)
            with client.subscribe() as stream:
                # Events stamped before the status read are in it already: skip them, or
                # their output and questions would count twice.
                before = time.time()
                self.mirror.load(client)
                client.close()
                now = self.clock()
                for n in sorted(self.mirror.rows):
                    self._look(n, now)
                self._check_finished()
                self.ready.set()
                while True:
                    # Asked to stop (the server is done): read what is left, then end.
                    stopping = self._stop.is_set()
                    event = stream.next(0.05 if stopping else self._wait())
                    if isinstance(event, ShuttingDown) or (event is None and stopping):
                        break
                    if event is not None and event.time <= before:
                        continue
                    if event is not None and self.mirror.apply(event) is not None:
                        assert isinstance(event, StepEvent)
                        self._look(event.n, event.time if isinstance(event, Prompt)
                                   else self.clock())
                        if isinstance(event, StateChanged):
                            self._check_finished()
                    self._tick(self.clock())
        except TrailError as exc:
            log.error("notifications stopped: %s", exc)
        except Exception:  # the notifier must never take the server down with it
            log.exception("notifications stopped by a bug")
        finally:
            self.ready.set()

    def _wait(self) -> float:
        deadlines = [deadline for deadline, _ in self._overdue.values()]
        for n, waiting in self._waiting.items():
            after = self.steps[n].escalate_after if n in self.steps else None
            if after is not None and not waiting.escalated:
                deadlines.append(waiting.since + after)
        if not deadlines:
            return POLL
        return max(0.0, min(POLL, min(deadlines) - self.clock()))

    # --- what a step's row says ---------------------------------------------------------

    def _look(self, n: int, now: float) -> None:
        row = self.mirror.rows[n]
        state = row[StatusField.STATE]
        started = row.get(StatusField.STARTED_AT)
        if state != State.READY.value:
            # A step's run is named by its start in the journal where there is one: a
            # server that takes the run up names it the same way.
            started = self._step_run(n, started)
        settings = self.steps.get(n)
        if state in _FAILED_STATES:
            notice = messages.failed(self.facts, row, f"failed:{n}:{started}")
            self._emit(notice)
            if state == State.PAUSED_ON_FAIL.value:
                self._wait_for_person(n, row.get(StatusField.FINISHED_AT) or now, notice)
            else:
                self._waiting.pop(n, None)
        elif state == State.RUNNING.value and self.mirror.question(n) is not None:
            asked = len(row.get(StatusField.PROMPT_MESSAGES) or [])
            notice = messages.waiting(self.facts, row, self.mirror.question(n),
                                      f"waiting:{n}:{started}:{asked}")
            self._emit(notice)
            self._wait_for_person(n, now, notice)
        else:
            self._waiting.pop(n, None)
        since = row.get(StatusField.STARTED_AT)
        if state == State.RUNNING.value and settings and settings.warn_after is not None \
                and since is not None:
            key = f"overdue:{n}:{started}"
            if key not in self._told:
                self._overdue[n] = (since + settings.warn_after, key)
        else:
            self._overdue.pop(n, None)

    def _step_run(self, n: int, started: Any) -> Any:
        cached = self._runs.get(n)
        if cached is None or cached[0] != started:
            cached = self._runs[n] = (started, self.courier.ledger.step_run(n) or started)
        return cached[1]

    def _wait_for_person(self, n: int, since: float, notice: Notice) -> None:
        found = self._waiting.get(n)
        if found is None or found.notice.key != notice.key:
            self._waiting[n] = _Waiting(since, notice)

    def _tick(self, now: float) -> None:
        for n, (deadline, key) in list(self._overdue.items()):
            if now >= deadline:
                del self._overdue[n]
                warn = self.steps[n].warn_after or 0.0
                self._emit(messages.overdue(self.facts, self.mirror.rows[n], warn, key))
        for n, waiting in self._waiting.items():
            after = self.steps[n].escalate_after if n in self.steps else None
            if after is not None and not waiting.escalated and now >= waiting.since + after:
                waiting.escalated = True
                self._emit(messages.escalated(self.facts, waiting.notice, after,
                                              f"escalated:{waiting.notice.key}"),
                           first=waiting.notice)

    def _check_finished(self) -> None:
        states = {n: row[StatusField.STATE] for n, row in self.mirror.rows.items()}
        cut = set().union(*(self._cut_off(n, State(s) is State.FAILED)
                            for n, s in states.items() if State(s).ignored))
        finished = all(State(s).finished or n in cut for n, s in states.items())
        if finished and not self._finished:
            ends = [row.get(StatusField.FINISHED_AT) or 0 for row in self.mirror.rows.values()]
            mark = self.courier.ledger.last_change() or max(ends, default=0)
            failure = any(s in _END_FAILURES for s in states.values())
            self._emit(messages.finished(self.facts, self.mirror.counts(), failure,
                                         f"finished:{mark}"))
        self._finished = finished

    def _cut_off(self, n: int, failed: bool) -> set[int]:
        """What a Failed or Blocked step holds up (a gate below a failure still runs)."""
        if (n, failed) not in self._below:
            step = self._step_of.get(n)
            below = below_failures if failed else progeny
            self._below[n, failed] = set() if step is None else {
                n_of(self.graph, p) for p in below(self.graph, [step])}
        return self._below[n, failed]

    # --- who gets it ---------------------------------------------------------------------

    def targets(self, notice: Notice, first: Notice | None = None) -> list[Destination]:
        settings = self.steps.get(notice.n) if notice.n is not None else None
        names = settings.names if settings else frozenset()
        candidates = self.destinations + (settings.destinations if settings else [])
        found = [d for d in candidates if d.takes(notice.kind, names)]
        if not found and notice.kind == ESCALATED and first is not None:
            # No one is named for escalations: tell those who were told the first time.
            found = [d for d in candidates if d.takes(first.kind, names)]
        return found

    def _emit(self, notice: Notice, first: Notice | None = None) -> None:
        if notice.key in self._told:
            return
        self._told.add(notice.key)
        targets = self.targets(notice, first)
        if not targets:
            return
        if notice.n is not None and notice.kind in (FAILED, WAITING) and self._flapping(notice):
            log.info("notice %s not sent: step %s sent %d %s notices in %g s", notice.key,
                     notice.n, RATE_LIMIT[0], notice.kind, RATE_LIMIT[1])
            for target in targets:
                self.courier.ledger.claim(notice.key, notice.kind, notice.n, target.where,
                                          RATE_LIMITED)
            return
        for target in targets:
            self.courier.send(notice, target)

    def _flapping(self, notice: Notice) -> bool:
        assert notice.n is not None
        now = self.clock()
        recent = self._recent.setdefault((notice.n, notice.kind), deque())
        while recent and recent[0] < now - RATE_LIMIT[1]:
            recent.popleft()
        if len(recent) >= RATE_LIMIT[0]:
            return True
        recent.append(now)
        return False
