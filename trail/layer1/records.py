"""A step's record in one run (its state, attempts, messages) and the index that finds steps.

The Step is the description and is never changed by a run; everything a run learns about a
step lives here, in the run's record of it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from trail.core.states import State
from trail.core.step import Step
from trail.layer1 import values
from trail.layer1.executors import Executor, TrailEnvironment
from trail.layer1.journal import SavedStep

_NOT_A_TAG = object()

# What a step's output keeps, in memory and in the journal: the newest messages, behind a
# note saying how many went (one message is at most values.MAX_MESSAGE_CHARS).
MAX_KEPT_MESSAGES = 1000
MAX_KEPT_CHARS = 1 << 20


def _size(message: Any) -> int:
    return len(message) if isinstance(message, str) else len(values.dumps(message))


_NONE: tuple[Any, ...] = ()  # an empty message list, shared until a step has messages


class StepRecord:
    """The run's record of one step: its state and run-time data.

    ``tags`` are the step's tags with this run's ``n``. Change a record only through its
    methods: each bumps ``version``, which keys the cache of encoded status rows (a status
    call re-encodes only the steps that changed) and tells the run it must be journaled.

    A run may hold a hundred thousand of these, so a record has slots, and what most steps
    never have (messages, a cached status row, journaled output rows) costs nothing until
    they do: the message lists are a shared empty tuple until the first message.
    """

    __slots__ = ("step", "n", "name", "pause_on_fail", "state", "return_value",
                 "shown_return_value", "output_messages", "prompt_messages",
                 "input_messages", "run_id", "executor", "environment", "started_at",
                 "finished_at", "attempt", "tries", "retrying", "retry_at", "retry_at_wall",
                 "version", "on_change", "_rows", "_kept_chars", "_dropped", "journaled",
                 "journaled_chars")

    def __init__(self, step: Step, n: int, name: str, pause_on_fail: bool,
                 on_change: Callable[[StepRecord], None] | None = None) -> None:
        self.step = step
        self.n = n
        self.name = name
        self.pause_on_fail = pause_on_fail
        self.state = State.READY
        self.return_value: Any = None
        self.shown_return_value: Any = None  # values.shown(return_value), for status calls
        self.output_messages: list[Any] | tuple[Any, ...] = _NONE
        self.prompt_messages: list[Any] | tuple[Any, ...] = _NONE
        self.input_messages: list[Any] | tuple[Any, ...] = _NONE
        self.run_id: int | None = None  # the latest run
        self.executor: Executor | None = None
        self.environment: TrailEnvironment | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.attempt = 0  # the run id of the latest run, as the journal numbers messages
        self.tries = 0  # runs since the operator (or the start) last let it run
        self.retrying = False  # the next start is a retry, not a fresh start
        self.retry_at: float | None = None  # clock time before which a retry must not start
        self.retry_at_wall: float | None = None  # the same, wall clock, for status, journal
        self.version = 0
        self.on_change = on_change  # told of every change (the run journals what changed)
        # The encoded status row for one set of fields: (fields, version, JSON).
        self._rows: tuple[tuple[str, ...], int, bytes] | None = None
        self._kept_chars = 0  # about the size of output_messages
        self._dropped = 0  # output messages dropped from the front
        # The journal's rows of this step's latest output, oldest first: (row id, size).
        self.journaled: deque[tuple[int, int]] | None = None
        self.journaled_chars = 0

    def __repr__(self) -> str:
        return f"StepRecord(n={self.n}, name={self.name!r}, state={self.state.value!r})"

    @property
    def tags(self) -> dict[str, Any]:
        """The step's tags with this run's ``n`` (a new dict: changing it changes nothing)."""
        return {**self.step.tags, "n": self.n}

    def tag(self, key: str, default: Any = None) -> Any:
        """One of ``tags`` without building them all."""
        return self.n if key == "n" else self.step.tags.get(key, default)

    @property
    def brief(self) -> dict[str, Any]:
        """The tags that identify the step: what mutating calls return."""
        return {"n": self.n, "name": self.name}

    @property
    def unreplied_prompt(self) -> Any:
        """The question the step waits on: only a running step waits."""
        if self.state is State.RUNNING and len(self.prompt_messages) > len(self.input_messages):
            return self.prompt_messages[-1]
        return None

    def matches(self, tags: dict[str, Any]) -> bool:
        return all(self.tag(key, _NOT_A_TAG) == value for key, value in tags.items())

    def encoded_row(self, fields: tuple[str, ...],
                    make: Callable[[StepRecord], Any]) -> bytes:
        """The JSON of ``make(self)``, this step's status row for ``fields``, cached per
        version (for the fields last asked for: views ask for the same ones again)."""
        cached = self._rows
        if cached is not None and cached[1] == self.version and cached[0] == fields:
            return cached[2]
        data = values.dumps(make(self)).encode()
        self._rows = (fields, self.version, data)
        return data

    def _changed(self) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change(self)

    def set_state(self, state: State) -> None:
        self.state = state
        self._changed()

    def schedule_retry(self, at: float, wall: float) -> None:
        self.retrying, self.retry_at, self.retry_at_wall = True, at, wall
        self._changed()

    def set_pause_on_fail(self, value: bool) -> None:
        self.pause_on_fail = value
        self._changed()

    def begin_run(self, run_id: int, executor: Executor, env: TrailEnvironment) -> None:
        # A new run starts a new conversation (AutoTrail does the same); output stays.
        self.prompt_messages, self.input_messages = _NONE, _NONE
        self.return_value = self.shown_return_value = None
        self.run_id, self.executor, self.environment = run_id, executor, env
        self.attempt = run_id
        self.tries = self.tries + 1 if self.retrying else 1
        self.retrying, self.retry_at, self.retry_at_wall = False, None, None
        self.started_at, self.finished_at = time.time(), None
        self._changed()

    def end_run(self) -> None:
        self.finished_at = time.time()
        self.environment = None
        self._changed()

    def set_return_value(self, value: Any) -> None:
        self.return_value = value
        self.shown_return_value = values.shown(value)
        self._changed()

    def add_output(self, message: Any) -> None:
        """Keep ``message`` (clipped): the last MAX_KEPT_MESSAGES messages and at most about
        MAX_KEPT_CHARS characters are kept, behind a note counting what was dropped."""
        if isinstance(self.output_messages, tuple):
            self.output_messages = list(self.output_messages)
        self.output_messages.append(message)
        size = _size(message)
        self._kept_chars += size
        kept = self.output_messages
        noted = 1 if self._dropped else 0
        if len(kept) - noted > MAX_KEPT_MESSAGES * 1.1 or self._kept_chars > MAX_KEPT_CHARS:
            # Drop in one go, down to 90% of the limits: O(1) per message over time.
            drop = noted
            while drop < len(kept) - 1 and (len(kept) - drop > MAX_KEPT_MESSAGES * 0.9
                                            or self._kept_chars > MAX_KEPT_CHARS * 0.9):
                self._kept_chars -= _size(kept[drop])
                drop += 1
            self._dropped += drop - noted
            note = (f"[trail] ... truncated: {self._dropped} earlier output messages not "
                    f"kept here (about the newest {MAX_KEPT_MESSAGES} are)")
            self.output_messages = [note, *kept[drop:]]
        self._changed()

    def journaled_output(self, row: int, message: Any) -> list[int]:
        """Note the journal's row of an output message; return the rows to delete from the
        journal so that it keeps the same bounded tail as memory."""
        size = _size(message)
        if self.journaled is None:
            self.journaled = deque()
        self.journaled.append((row, size))
        self.journaled_chars += size
        gone = []
        while len(self.journaled) > 1 and (len(self.journaled) > MAX_KEPT_MESSAGES
                                           or self.journaled_chars > MAX_KEPT_CHARS):
            old, old_size = self.journaled.popleft()
            self.journaled_chars -= old_size
            gone.append(old)
        return gone

    def add_prompt(self, message: Any) -> None:
        self.prompt_messages = [*self.prompt_messages, message]  # a few per run, at most
        self._changed()

    def add_input(self, message: Any) -> None:
        self.input_messages = [*self.input_messages, message]
        self._changed()

    def restore(self, saved: SavedStep) -> None:
        """Take the state a journal (or an AutoTrail DAG file) saved for this step."""
        self.state = State(saved.state)
        self.pause_on_fail = saved.pause_on_fail
        self.attempt = saved.attempt
        self.return_value = self.shown_return_value = saved.return_value
        self.started_at, self.finished_at = saved.started_at, saved.finished_at
        self.output_messages = list(saved.output) if saved.output else _NONE
        self._kept_chars = sum(_size(m) for m in self.output_messages)
        self._dropped = 0
        self.journaled = (deque(zip(saved.output_ids, map(_size, saved.output), strict=False))
                          if saved.output else None)
        self.journaled_chars = sum(size for _, size in self.journaled or ())
        self.prompt_messages = list(saved.prompts) if saved.prompts else _NONE
        self.input_messages = list(saved.inputs) if saved.inputs else _NONE
        self.tries = saved.tries
        self._changed()


class TagIndex:
    """Finds the records whose tags include given tags, by n (an unknown tag selects none).

    Keeps an index per tag key (built on first use; tags are fixed once a trail serves), so
    picking one step of a hundred thousand by name costs no scan.
    """

    def __init__(self, records: list[StepRecord]) -> None:
        self.records = records
        self._by_key: dict[str, dict[Any, StepRecord | list[StepRecord]] | None] = {}

    def select(self, tags: dict[str, Any]) -> list[StepRecord]:
        if not tags:
            return list(self.records)
        pool: list[StepRecord] | None = None
        for key, value in tags.items():
            hits = self._indexed(key, value)
            if hits is not None and (pool is None or len(hits) < len(pool)):
                pool = hits
        return [record for record in (self.records if pool is None else pool)
                if record.matches(tags)]

    def _indexed(self, key: str, value: Any) -> list[StepRecord] | None:
        """The records whose tag ``key`` equals ``value``; None if that key can't be indexed."""
        if key == "n":  # the records are in n order, from 0
            if type(value) is not int:
                return None  # 1.0 or True: equal to a number, found by a scan
            return [self.records[value]] if 0 <= value < len(self.records) else []
        if key not in self._by_key:
            self._by_key[key] = self._index(key)
        index = self._by_key[key]
        if index is None:
            return None
        try:
            found = index.get(value)
        except TypeError:
            return None
        if found is None:
            return []
        return found if isinstance(found, list) else [found]

    def _index(self, key: str) -> dict[Any, StepRecord | list[StepRecord]] | None:
        """The records by their value of tag ``key``: a record where the value is its alone
        (a name, mostly: no list per step), else a list; None for an unhashable value."""
        index: dict[Any, StepRecord | list[StepRecord]] = {}
        try:
            for record in self.records:
                found = record.tag(key, _NOT_A_TAG)
                if found is _NOT_A_TAG:
                    continue
                seen = index.setdefault(found, record)
                if seen is not record:
                    if isinstance(seen, list):
                        seen.append(record)
                    else:
                        index[found] = [seen, record]
        except TypeError:  # an unhashable tag value: this key is searched by scan
            return None
        return index


def by_n(records: Iterable[StepRecord]) -> list[StepRecord]:
    return sorted(records, key=lambda record: record.n)
