"""The events a trail server publishes: typed, frozen, with one JSON form for every client.

Each wake-up of the loop publishes what changed, after it is journaled::

    {"kind": "state", "seq": 12, "time": 1700000000.5, "n": 3, "name": "deploy",
     "state": "Succeeded", "previous": "Running", "cause": "returned", "return_value": 0}

``seq`` counts up from 1 per server, so a client sees whether it missed one. A subscriber
is greeted with ``Hello`` first: everything after the greeting reaches it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from typing import Any, ClassVar

from trail.errors import ProtocolError
from trail.layer1 import values


class _Missing:
    def __repr__(self) -> str:
        return "<none>"


_MISSING: Any = _Missing()  # the return_value of a state event that carries none
_text = json.encoder.encode_basestring_ascii  # a str as JSON, as values.dumps writes it


@dataclass(frozen=True)
class Event:
    """What every event has: its number in the stream and the wall-clock time it happened."""

    kind: ClassVar[str] = ""
    seq: int = 0
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        for name in _names(type(self)):
            value = getattr(self, name)
            if value is not _MISSING:
                data[name] = value
        return data

    def to_json(self) -> bytes:
        # A tag or message JSON cannot hold travels as trail shows it everywhere.
        return values.dumps(self.to_dict()).encode()

    # Dict-style reads, so code written when events were dicts keeps working.

    def __getitem__(self, key: object) -> Any:
        if key == "kind":
            return self.kind
        names = _names(type(self))
        value = getattr(self, key) if isinstance(key, str) and key in names else _MISSING
        if value is _MISSING:  # a key the event lacks, or a state event's absent value
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    @staticmethod
    def from_json(data: bytes | str | dict[str, Any]) -> Event:
        """The event a server published; ProtocolError for anything else."""
        if not isinstance(data, dict):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError(f"an event that is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProtocolError(f"an event must be a JSON object, not {type(data).__name__}")
        kind = data.get("kind")
        cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ProtocolError(f"an event of unknown kind {kind!r}")
        names = _names(cls)
        try:
            return cls(**{key: value for key, value in data.items() if key in names})
        except TypeError as exc:
            raise ProtocolError(f"a {kind!r} event trail does not understand: {exc}") from None


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """The field names of an event class (looked up once per class, not per event)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(field.name for field in fields(cls))
    return names


@dataclass(frozen=True)
class Hello(Event):
    """The greeting each new subscriber gets: from here on it misses nothing."""

    kind: ClassVar[str] = "hello"


@dataclass(frozen=True)
class StepEvent(Event):
    """Something happened to one step."""

    n: int = -1
    name: str = ""


@dataclass(frozen=True)
class StateChanged(StepEvent):
    """A step moved from ``previous`` to ``state`` because of ``cause`` ('api:pause',
    'returned', 'recovered from the journal: it was running', ...). A step leaving
    Running (it ended, failed an attempt, was interrupted) carries its return value as
    shown."""

    kind: ClassVar[str] = "state"
    state: str = ""
    previous: str = ""
    cause: str = ""
    return_value: Any = _MISSING

    @property
    def has_return_value(self) -> bool:
        return self.return_value is not _MISSING

    def to_json(self) -> bytes:
        # Three of these for every step a run starts: written out directly, the same bytes
        # as Event.to_json (a test holds them equal), at a third of its cost.
        if not (type(self.seq) is int and type(self.time) is float and type(self.n) is int
                and type(self.name) is str and type(self.state) is str
                and type(self.previous) is str and type(self.cause) is str
                and math.isfinite(self.time)):
            return super().to_json()
        value = ("" if self.return_value is _MISSING
                 else ',"return_value":' + values.dumps(self.return_value))
        return (f'{{"kind":"state","seq":{self.seq},"time":{self.time!r},"n":{self.n},'
                f'"name":{_text(self.name)},"state":{_text(self.state)},'
                f'"previous":{_text(self.previous)},"cause":{_text(self.cause)}'
                f'{value}}}').encode()


@dataclass(frozen=True)
class Output(StepEvent):
    """A line the step showed the operator (``trail_env.output``, a command's output)."""

    kind: ClassVar[str] = "output"
    message: Any = None


@dataclass(frozen=True)
class Prompt(StepEvent):
    """The step asked a question and waits for the answer (``trail_env.input``)."""

    kind: ClassVar[str] = "prompt"
    message: Any = None


@dataclass(frozen=True)
class Input(StepEvent):
    """The step was told ``message`` (an answer), by ``cause`` ('api:send_message_to_steps')."""

    kind: ClassVar[str] = "input"
    message: Any = None
    cause: str = ""


@dataclass(frozen=True)
class PauseOnFailChanged(StepEvent):
    """Whether the step pauses when it fails was set (``set_pause_on_fail``) or unset."""

    kind: ClassVar[str] = "pause_on_fail"
    pause_on_fail: bool = True
    cause: str = ""


@dataclass(frozen=True)
class Stopped(StepEvent):
    """A run of the step that was stopped (interrupted, timed out, shut down) is over:
    ``ended`` if its action ended within its grace period and the margin after it (else it
    was killed or given up). ``reports``: what it said of its work elsewhere, each
    ``{"where": host or None, "confirmed": bool, "detail": text}`` (``trail_env.report_stop``):
    a command on a host says whether the host confirmed that the command ended."""

    kind: ClassVar[str] = "stopped"
    ended: bool = True
    reports: list[dict[str, Any]] = dataclass_field(default_factory=list)


@dataclass(frozen=True)
class ShuttingDown(Event):
    """The server stops serving; running steps are interrupted on its way out."""

    kind: ClassVar[str] = "shutdown"
    cause: str = ""


@dataclass(frozen=True)
class Finished(Event):
    """The run is over: every step succeeded, was skipped or failed for good (or is cut off
    below a failed one). ``end`` is "succeeded" or "failed"; ``counts`` steps per state.
    Sent each time the run becomes finished (a rerun of a failed step reopens it)."""

    kind: ClassVar[str] = "finished"
    end: str = ""
    counts: dict[str, int] = dataclass_field(default_factory=dict)


class Outbox:
    """A run's events of one wake-up, numbered and stamped as they are made, until the loop
    sends them (once the wake-up's changes are journaled). While nobody ``listening``, no
    event is made: a run nobody watches skips building them."""

    def __init__(self) -> None:
        self.listening = False
        self.published = 0  # the seq of the last event (a subscriber that saw less lost some)
        self._events: list[Event] = []

    def publish(self, event: Event) -> None:
        if self.listening:
            self.published += 1
            # Every event is made to be published, once, so it is stamped in place
            # (``dataclasses.replace`` costs more than the rest of a step).
            object.__setattr__(event, "seq", self.published)
            object.__setattr__(event, "time", time.time())
            self._events.append(event)

    def take(self) -> list[Event]:
        taken, self._events = self._events, []
        return taken


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (Hello, StateChanged, Output, Prompt, Input, PauseOnFailChanged, Stopped,
                ShuttingDown, Finished)
}

__all__ = [
    "EVENT_TYPES",
    "Event",
    "Finished",
    "Hello",
    "Input",
    "Outbox",
    "Output",
    "PauseOnFailChanged",
    "Prompt",
    "ShuttingDown",
    "StateChanged",
    "StepEvent",
    "Stopped",
]
