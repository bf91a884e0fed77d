"""AutoTrail's DAG file: a JSON backup of a trail keyed by step name, written and read back."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from trail.core.dag import TrailGraph, n_of, steps_in_order
from trail.core.states import State
from trail.errors import DagFileMismatchError
from trail.layer1.journal import SavedStep

if TYPE_CHECKING:
    from trail.core.step import Step
    from trail.layer1.records import StepRecord
    from trail.layer1.timers import Timers

DAG_FILE_INTERVAL = 0.5  # seconds: how stale AutoTrail's DAG file may be while a run is busy

# What AutoTrail's restore_trail does with these states unless told otherwise.
DEFAULT_MAPPING = {State.BLOCKED.value: State.PAUSED.value,
                   State.RUNNING.value: State.PAUSED.value}


def write_dag_file(path: str, records: Sequence[StepRecord], graph: TrailGraph) -> None:
    """Write the trail's state as AutoTrail did (atomically: a crash leaves the old file):
    ``records`` are every step's, by n."""
    temporary = f"{path}.tmp"
    # 0600: return values and messages are the user's business only.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(descriptor, "w", buffering=1 << 16) as out:
        out.write("{")
        out.writelines(_entries(records, graph))
        out.write("}")
    os.replace(temporary, path)


def _entries(records: Sequence[StepRecord], graph: TrailGraph) -> Iterator[str]:
    """The file's text but its braces, a few thousand steps at a time: the same JSON as
    json.dump of the whole dict, ten times faster for a trail of 100,000 steps (most steps
    have no messages to encode), and never the whole text in memory at once."""
    parents_of, children_of = graph._pred, graph._succ  # networkx's adjacency dicts
    # A parent's name as JSON, kept from its own entry: by n, parents come first.
    named: dict[Step, str] = {}
    pieces: list[str] = []
    separator = ""
    for record in records:
        key = _text(record.name)
        step = record.step
        if children_of[step]:
            named[step] = key
        pieces.append(
            f'{key}: {_UNTOUCHED if record.version == 0 else _entry(record)}"parents": ['
            f'{", ".join(map(named.__getitem__, parents_of[step]))}]}}')
        if len(pieces) == _CHUNK:
            yield separator + ", ".join(pieces)
            pieces.clear()
            separator = ", "
    if pieces:
        yield separator + ", ".join(pieces)


_CHUNK = 4096  # steps written at a time


_text = json.encoder.encode_basestring_ascii  # a str as JSON, as json.dumps writes it


def _messages(messages: Sequence[Any]) -> str:
    return json.dumps(messages, default=str) if messages else "[]"


def _entry(record: StepRecord) -> str:
    """A step's entry in the DAG file but its parents (and the closing brace)."""
    return (f'{{"State": {_text(record.state.value)}, '
            f'"Return value": {_text(str(record.shown_return_value))}, '
            f'"Prompt messages": {_messages(record.prompt_messages)}, '
            f'"Output messages": {_messages(record.output_messages)}, '
            f'"Input messages": {_messages(record.input_messages)}, ')


# The entry of a step that nothing has happened to (its record's version 0): most steps
# when a big trail is served, when the file is first written.
_UNTOUCHED = ('{"State": "Ready", "Return value": "None", "Prompt messages": [], '
              '"Output messages": [], "Input messages": [], ')


def read_dag_file(path: str, graph: TrailGraph,
                  mapping: dict[str, str] | None = None) -> dict[int, SavedStep]:
    """The saved state of each step of ``graph`` in an AutoTrail DAG file, by n.

    Raises DagFileMismatchError (AutoTrail's MatchTrailsException) when a step is missing
    from the file or its parents differ.
    """
    mapping = mapping or DEFAULT_MAPPING  # AutoTrail: an empty mapping means the default
    with open(path) as source:
        data = json.load(source)
    saved = {}
    for step in steps_in_order(graph):
        entry = data.get(step.name)
        if entry is None:
            raise DagFileMismatchError(f"step {step.name!r} is not in the DAG file {path}")
        parents = sorted(p.name for p in graph.predecessors(step))
        if sorted(entry.get("parents", [])) != parents:
            raise DagFileMismatchError(
                f"the parents of step {step.name!r} differ from the DAG file {path}")
        n = n_of(graph, step)
        state = mapping.get(entry["State"], entry["State"])
        saved[n] = SavedStep(n, step.name, state, step.pause_on_fail, 0,
                             entry.get("Return value"), None, None,
                             entry.get("Output messages", []),
                             entry.get("Prompt messages", []), entry.get("Input messages", []))
    return saved


class DagFile:
    """A run's AutoTrail DAG file (at ``path``; None: none), rewritten as its steps change.

    At the next wake-up after a change, or DAG_FILE_INTERVAL after the last write: it is
    the whole trail, too big to write at every wake-up of a busy run (AutoTrail did), and a
    commit that precedes a step's start must not wait for it. A trail so big that a write
    takes longer than a tenth of that waits ten writes' time instead, so the file never
    takes more than a tenth of the loop's time."""

    def __init__(self, records: Sequence[StepRecord], graph: TrailGraph,
                 timers: Timers) -> None:
        self.path: str | None = None
        self._records = records
        self._graph = graph
        self._timers = timers
        self._stale = False  # steps changed since it was last written
        self._at = -math.inf  # when it was last written (the timers' clock)
        self._timer = False
        self._took = 0.0  # seconds the last write took

    def changed(self) -> None:
        """Steps changed: write the file soon."""
        if self.path is None:
            return
        self._stale = True
        if not self._timer:  # a timer even when due: never delay a step's start
            self._timer = True
            interval = max(DAG_FILE_INTERVAL, 10 * self._took)
            wait = self._at + interval - self._timers.clock()
            self._timers.call_later(max(0.0, wait), self._due)

    def _due(self) -> None:
        self._timer = False
        if self._stale:
            self.save()

    def save(self) -> None:
        """Write it now (if the run has one) with every step as it is."""
        if self.path is None:
            return
        began = time.perf_counter()
        write_dag_file(self.path, self._records, self._graph)
        self._took = time.perf_counter() - began
        self._stale = False
        self._at = self._timers.clock()
