"""Where a run stands: its steps grouped by state, and what follows from that (counts,
whether it has finished, how it ended, whether it waits on the operator).

``Run.apply`` tells it of every move (``moved``), so none of these questions looks at
every step of a 100,000-step run while it is busy.
"""

from __future__ import annotations

from collections.abc import Iterable

from trail.core.dag import TrailGraph, below_failures, progeny
from trail.core.states import State
from trail.core.step import Step
from trail.layer1.records import StepRecord, by_n
from trail.layer1.scheduler import PENDING

FINAL = frozenset({State.SUCCEEDED, State.SKIPPED, State.FAILED})  # nothing more happens
# States in which a step waits on the operator (or on start), holding up its progeny.
STUCK = frozenset({State.READY, State.PAUSED, State.PAUSED_ON_FAIL, State.INTERRUPTED,
                   State.BLOCKED, State.FAILED})


class Standing:
    """The records of a run by state, kept as they move."""

    def __init__(self, graph: TrailGraph, records: list[StepRecord]) -> None:
        self.graph = graph
        self.records = records
        self._in_state: dict[State, dict[StepRecord, None]] = {}
        self.recount()

    def recount(self) -> None:
        """Sort the records by state anew (after states were set other than by a move)."""
        self._in_state = {state: {} for state in State}
        for record in self.records:
            self._in_state[record.state][record] = None

    def moved(self, record: StepRecord, old: State, new: State) -> None:
        left = self._in_state[old]
        del left[record]
        if not left:  # a dict keeps its size when emptied: 100,000 Ready steps, say
            self._in_state[old] = {}
        self._in_state[new][record] = None

    def in_state(self, *states: State) -> list[StepRecord]:
        """The records in any of ``states``, by n."""
        return by_n(record for state in states for record in self._in_state[state])

    def _steps_in(self, states: Iterable[State]) -> list[Step]:
        return [record.step for state in states for record in self._in_state[state]]

    def counts(self) -> dict[str, int]:
        """How many steps are in each state (the states some step is in, in table order)."""
        return {state.value: len(records) for state, records in self._in_state.items()
                if records}

    def finished(self) -> bool:
        """The run is over: every step succeeded, was skipped or failed for good, or is cut
        off below a step that failed for good. A Blocked, paused or interrupted step keeps
        the run open (the operator can still unblock, resume, rerun or skip it)."""
        if not any(records for state, records in self._in_state.items() if state not in FINAL):
            return True
        if not self._in_state[State.FAILED]:
            return False  # some step is not final, and no failure cuts it off
        # A gate below a failure runs: the walk stops there.
        cut_off = below_failures(self.graph, self._steps_in([State.FAILED]))
        return all(r.state in FINAL or r.step in cut_off for r in self.records)

    def end_state(self) -> str | None:
        """How the run ended: "succeeded" (every step succeeded or was skipped), "failed",
        or None while it is not finished."""
        if not self.finished():
            return None
        done = len(self._in_state[State.SUCCEEDED]) + len(self._in_state[State.SKIPPED])
        return "succeeded" if done == len(self.records) else "failed"

    def idle(self) -> bool:
        """Nothing happens without an operator: nothing runs (but steps waiting for an
        answer) and nothing will start by itself (whatever waits is below a step that is
        not done: Ready, paused, blocked, interrupted or failed)."""
        if any(not asks(record) for record in self._in_state[State.RUNNING]):
            return False  # a step runs: the quick answer while a run is busy
        moving = [record for state in PENDING for record in self._in_state[state]]
        if not moving:
            return True  # nothing runs (but questions) and nothing waits to move
        stuck = self._steps_in(STUCK - {State.FAILED})
        below = progeny(self.graph, stuck) if stuck else set()
        failed = self._steps_in([State.FAILED])
        if failed:  # a gate below a failure runs: the walk stops there
            below |= below_failures(self.graph, failed)
        return all(record.step in below for record in moving)

    def waiting_for_operator(self) -> dict[str, list[tuple[int, str]]]:
        """Steps the run waits on, by what they wait for (n, name), while it is idle."""
        found: dict[str, list[tuple[int, str]]] = {}
        for record in self.in_state(*(STUCK - {State.FAILED}), State.RUNNING):
            if record.state is State.RUNNING:
                if asks(record):
                    found.setdefault("an answer", []).append((record.n, record.name))
            else:
                found.setdefault(record.state.value, []).append((record.n, record.name))
        return found


def asks(record: StepRecord) -> bool:
    """The (running) step waits for an answer to its question."""
    return len(record.prompt_messages) > len(record.input_messages)
