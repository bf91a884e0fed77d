"""A step's record in one run (its state, attempts, messages) and the index that finds steps.

The Step is the description and is never changed by a run; everything a run learns about a
step lives here, in the run's record of it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


@dataclass(eq=False)
class StepRecord:
    """The run's record of one step: its state and run-time data.

    ``tags`` are the step's tags with this run's ``n``. Change a record only through its
    methods: each bumps ``version``, which keys the cache of encoded status rows (a status
    call re-encodes only the steps that changed) and tells the run it must be journaled.
    """

    step: Step
    n: int
    name: str
    pause_on_fail: bool
    tags: dict[str, Any] = field(default_factory=dict)
    state: State = State.READY
    return_value: Any = None
    shown_return_value: Any = None  # values.shown(return_value), kept for status calls
    output_messages: list[Any] = field(default_factory=list)
    prompt_messages: list[Any] = field(default_factory=list)
    input_messages: list[Any] = field(default_factory=list)
    run_id: int | None = None  # the latest run
    executor: Executor | None = None
    environment: TrailEnvironment | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 0  # the run id of the latest run, as the journal numbers messages
    tries: int = 0  # runs since the operator (or the start) last let it run
    retrying: bool = False  # the next start is a retry, not a fresh start
    retry_at: float | None = None  # clock time before which a retry must not start
    retry_at_wall: float | None = None  # the same, wall clock, for status and the journal
    version: int = 0
    on_change: Callable[[StepRecord], None] | None = field(default=None, repr=False)
    _rows: dict[tuple[str, ...], tuple[int, bytes]] = field(default_factory=dict, repr=False)
    _kept_chars: int = field(default=0, repr=False)  # about the size of output_messages
    _dropped: int = field(default=0, repr=False)  # output messages dropped from the front
    # The journal's rows of this step's latest output, oldest first: (row id, size).
    journaled: deque[tuple[int, int]] = field(default_factory=deque, repr=False)
    journaled_chars: int = field(default=0, repr=False)

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
        return all(self.tags.get(key, _NOT_A_TAG) == value for key, value in tags.items())

    def encoded_row(self, fields: tuple[str, ...], make: Callable[[], Any]) -> bytes:
        """The JSON of ``make()``, this step's status row for ``fields``, cached per version."""
        cached = self._rows.get(fields)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        data = values.dumps(make()).encode()
        self._rows[fields] = (self.version, data)
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
        self.prompt_messages, self.input_messages = [], []
        self.return_value = self.shown_return_value = None
        self.run_id, self.executor, self.environment = run_id, executor, env
        self.attempt = run_id
        self.tries = self.tries + 1 if self.retrying else 1
        self.retrying, self.retry_at, self.retry_at_wall = False, None, None
        self.started_at, self.finished_at = time.time(), None
        self._changed()

    def end_run(self) -> None:
        self.finished_at = time.time()
        self._changed()

    def set_return_value(self, value: Any) -> None:
        self.return_value = value
        self.shown_return_value = values.shown(value)
        self._changed()

    def add_output(self, message: Any) -> None:
        """Keep ``message`` (clipped): the last MAX_KEPT_MESSAGES messages and at most about
        MAX_KEPT_CHARS characters are kept, behind a note counting what was dropped."""
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
        self.prompt_messages.append(message)
        self._changed()

    def add_input(self, message: Any) -> None:
        self.input_messages.append(message)
        self._changed()

    def restore(self, saved: SavedStep) -> None:
        """Take the state a journal (or an AutoTrail DAG file) saved for this step."""
        self.state = State(saved.state)
        self.pause_on_fail = saved.pause_on_fail
        self.attempt = saved.attempt
        self.return_value = self.shown_return_value = saved.return_value
        self.started_at, self.finished_at = saved.started_at, saved.finished_at
        self.output_messages = list(saved.output)
        self._kept_chars = sum(_size(m) for m in self.output_messages)
        self._dropped = 0
        self.journaled = deque(zip(saved.output_ids, map(_size, saved.output), strict=False))
        self.journaled_chars = sum(size for _, size in self.journaled)
        self.prompt_messages = list(saved.prompts)
        self.input_messages = list(saved.inputs)
        self.tries = saved.tries
        self._changed()


class TagIndex:
    """Finds the records whose tags include given tags, by n (an unknown tag selects none).

    Keeps an index per tag key (built on first use; tags are fixed once a trail serves), so
    picking one step of a hundred thousand by name costs no scan.
    """

    def __init__(self, records: list[StepRecord]) -> None:
        self.records = records
        self._by_key: dict[str, dict[Any, list[StepRecord]] | None] = {}

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
        if key not in self._by_key:
            index: dict[Any, list[StepRecord]] | None = {}
            try:
                for record in self.records:
                    if key in record.tags:
                        index.setdefault(record.tags[key], []).append(record)  # type: ignore[union-attr]
            except TypeError:  # an unhashable tag value: this key is searched by scan
                index = None
            self._by_key[key] = index
        index = self._by_key[key]
        if index is None:
            return None
        try:
            return index.get(value, [])
        except TypeError:
            return None


def by_n(records: Iterable[StepRecord]) -> list[StepRecord]:
    return sorted(records, key=lambda record: record.n)
