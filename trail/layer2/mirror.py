"""StatusMirror: a run's status rows kept current from its events, for every view.

A view (the live view, monitor_trail, anything that follows a run) reads the rows once
with ``status()`` after subscribing, then applies each event to them, so it never polls and
never misses a step that runs for a microsecond. The rules that turn events into rows are
written here once, and they are the server's own (``StepRecord``): a mirror that has
applied every event equals a fresh ``status()`` of the same fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trail.core.states import State
from trail.layer1.events import (
    Event,
    Input,
    Output,
    PauseOnFailChanged,
    Prompt,
    StateChanged,
    StepEvent,
)
from trail.layer1.wire import DEFAULT_STATUS_FIELDS, StatusField
from trail.layer2.client import TrailClient

Row = dict[str, Any]

# Not a status field (yet): a row that carries this key has it kept current.
PAUSE_ON_FAIL = "pause_on_fail"

# Read at load besides the asked fields: whether a step waits for an answer is the count
# of its questions against its answers, and a view shows its latest output line (or the
# value it failed with).
_BOOKKEEPING = (StatusField.STATE, StatusField.OUTPUT_MESSAGES, StatusField.PROMPT_MESSAGES,
                StatusField.INPUT_MESSAGES, StatusField.RETURN_VALUE)


@dataclass
class _Talk:
    """A step's conversation in its latest run, and the line a view shows for it."""

    asked: int = 0
    told: int = 0
    question: Any = None
    last: str = ""


class StatusMirror:
    """Status rows by ``n`` (the keys of ``status()``), brought up to date by ``apply``.

    A row holds ``n``, ``Name`` and the asked ``fields`` (``State`` always: counts and
    waiting need it); each event updates the fields the row holds. The rules, as the
    server applies them:

    - a step starts Running: a new conversation, its prompts, inputs, unreplied prompt and
      return value cleared; Started at is the event's time, Finished at None;
    - a step leaves Running (it ended, or waits for a retry): Finished at is the event's
      time; a state event that carries a return value sets it;
    - output is appended; a prompt is appended and waits for a response; an input is
      appended, and answers it; only a Running step waits;
    - a pause_on_fail event sets ``pause_on_fail`` where a row has it.

    Fields no event carries (Tags, Attempt, Next retry at) keep the values loaded.
    """

    def __init__(self, fields: Iterable[str] = DEFAULT_STATUS_FIELDS) -> None:
        self.fields: tuple[str, ...] = tuple(dict.fromkeys([StatusField.STATE, *fields]))
        self.rows: dict[int, Row] = {}
        self._talk: dict[int, _Talk] = {}
        # Kept as events come, so that a view of 10,000 steps need not count them per frame.
        self._counts: dict[str, int] = {}
        self._asking: set[int] = set()  # the steps waiting for an answer

    def load(self, client: TrailClient, **tags: Any) -> None:
        """Read the rows of the steps with ``tags`` from ``client.status()``: subscribe
        first, so that no event falls between the read and the stream."""
        asked = list(dict.fromkeys([*self.fields, *_BOOKKEEPING]))
        self.reset(client.status(fields=asked, **tags))

    def reset(self, rows: Iterable[Row]) -> None:
        """Take ``rows`` (from ``status()``) as the truth; fields missing from them stay
        missing, and the messages lists, when present, are what waiting is counted from."""
        keep = (StatusField.N, StatusField.NAME, *self.fields)
        self.rows, self._talk, self._counts, self._asking = {}, {}, {}, set()
        for row in rows:
            n = row[StatusField.N]
            prompts = row.get(StatusField.PROMPT_MESSAGES) or []
            inputs = row.get(StatusField.INPUT_MESSAGES) or []
            output = row.get(StatusField.OUTPUT_MESSAGES) or [""]
            value = row.get(StatusField.RETURN_VALUE)
            failed = value is not None and row[StatusField.STATE] != State.SUCCEEDED.value
            self._talk[n] = _Talk(len(prompts), len(inputs), prompts[-1] if prompts else None,
                                  str(value) if failed else str(output[-1]))
            self.rows[n] = {key: row[key] for key in keep if key in row}
            self._count(row[StatusField.STATE], 1)
            self._ask(n)

    def apply(self, event: Event) -> Row | None:
        """Bring the row of the event's step up to date; return it, or None when the event
        is about no mirrored step (a greeting, a shutdown, a step outside the tags)."""
        if not isinstance(event, StepEvent):
            return None
        row = self.rows.get(event.n)
        if row is None:
            return None
        talk = self._talk[event.n]
        if isinstance(event, StateChanged):
            self._count(row[StatusField.STATE], -1)
            self._state(row, talk, event)
            self._count(event.state, 1)
        elif isinstance(event, Output):
            _append(row, StatusField.OUTPUT_MESSAGES, event.message)
            talk.last = str(event.message)
        elif isinstance(event, Prompt):
            _append(row, StatusField.PROMPT_MESSAGES, event.message)
            talk.asked += 1
            talk.question = event.message
        elif isinstance(event, Input):
            _append(row, StatusField.INPUT_MESSAGES, event.message)
            talk.told += 1
        elif isinstance(event, PauseOnFailChanged):
            _set(row, PAUSE_ON_FAIL, event.pause_on_fail)
        _set(row, StatusField.UNREPLIED_PROMPT_MESSAGE, self._ask(event.n))
        return row

    def _count(self, state: str, by: int) -> None:
        left = self._counts.get(state, 0) + by
        if left:
            self._counts[state] = left
        else:
            self._counts.pop(state, None)

    def _ask(self, n: int) -> Any:
        question = self.question(n)
        if question is None:
            self._asking.discard(n)
        else:
            self._asking.add(n)
        return question

    def _state(self, row: Row, talk: _Talk, event: StateChanged) -> None:
        was_running = State.RUNNING.value in (row[StatusField.STATE], event.previous)
        row[StatusField.STATE] = event.state
        if event.state == State.RUNNING.value:
            talk.asked, talk.told, talk.question = 0, 0, None
            _set(row, StatusField.PROMPT_MESSAGES, [])
            _set(row, StatusField.INPUT_MESSAGES, [])
            _set(row, StatusField.RETURN_VALUE, None)
            _set(row, StatusField.STARTED_AT, event.time)
            _set(row, StatusField.FINISHED_AT, None)
        elif was_running:
            _set(row, StatusField.FINISHED_AT, event.time)
        if event.has_return_value:
            _set(row, StatusField.RETURN_VALUE, event.return_value)
            if event.state != State.SUCCEEDED.value:
                talk.last = str(event.return_value)  # why it failed, where a view looks

    def question(self, n: int) -> Any:
        """The question step ``n`` waits to have answered, or None: only a Running step
        waits, and only while it has asked more than it was told."""
        row, talk = self.rows[n], self._talk[n]
        if row[StatusField.STATE] == State.RUNNING.value and talk.asked > talk.told:
            return talk.question
        return None

    def waiting(self) -> list[Row]:
        """The rows of the steps waiting for an answer, by n."""
        return [self.rows[n] for n in sorted(self._asking)]

    def asking(self) -> set[int]:
        """The n of every step waiting for an answer (a copy)."""
        return set(self._asking)

    def last(self, n: int) -> str:
        """The line a view shows for step ``n``: its latest output, or the value it failed
        with when that came later."""
        return self._talk[n].last

    def counts(self) -> dict[str, int]:
        """How many steps are in each state (states no step is in are left out)."""
        return dict(self._counts)


def _set(row: Row, key: str, value: Any) -> None:
    if key in row:
        row[key] = value


def _append(row: Row, key: str, message: Any) -> None:
    if key in row:
        row[key].append(message)


__all__ = ["PAUSE_ON_FAIL", "StatusMirror"]
