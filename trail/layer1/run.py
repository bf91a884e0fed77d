"""The state of one run: every step's record, and every transition with its effects.

``Run.apply`` is the one place a step's state changes. It checks the move against the
transition table, journals it, and carries out what entering and leaving a state means:
leaving Running frees the step's slot and stamps its end; getting done lets its children
through; a pending state puts it before the scheduler; the change is published. Starting,
finishing, failing, retrying, interrupting (``lifecycle.py``) and recovering a step all go
through it.

There is no ZeroMQ here: the loop (``loop.py``) feeds the run requests, executor messages
and timers, and takes its journal commits and events. Tests drive a Run on a MockClock.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from itertools import count, repeat
from operator import attrgetter
from typing import Any

from trail.core.bulk import trim_heap
from trail.core.dag import TrailGraph, numbers_of, optioned, steps_in_order
from trail.core.states import DONE_STATES, Action, State, transition
from trail.core.step import Step
from trail.layer1 import context as durable
from trail.layer1 import events
from trail.layer1.dagfile import DagFile
from trail.layer1.executors import make_executor
from trail.layer1.journal import JournalRun, SavedStep
from trail.layer1.lifecycle import DEFAULT_GRACE, StepRuns
from trail.layer1.records import StepRecord, TagIndex, by_n
from trail.layer1.scheduler import PENDING, Scheduler
from trail.layer1.settings import Settings
from trail.layer1.standing import Standing
from trail.layer1.steplogs import StepLogs
from trail.layer1.timers import Timers

log = logging.getLogger(__name__)


class Run:
    """One run of a trail: its records, scheduler, executors and timers.

    Everything here happens on one thread (the loop's): no lock guards a record.
    ``journal`` (a JournalRun) receives every transition and message as it happens and
    each changed step at ``commit``; ``outbox.listening`` says whether anyone wants the
    events, so a run nobody watches skips building them.
    """

    def __init__(self, graph: TrailGraph, context: Any = None, settings: Settings | None = None,
                 *, journal: JournalRun | None = None, timers: Timers | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.graph = graph
        self.context = context
        self.settings = settings or Settings()
        self.journal = journal
        self.timers = timers or Timers()
        self.info = dict(info or {})
        self._touched: dict[StepRecord, None] = {}  # changed since the last commit, in order
        steps = steps_in_order(graph)
        # ``map``s, not a loop: no Python code but the record's own per step (100,000).
        self.records = list(map(StepRecord, steps, count(), map(_name, steps),
                                map(_pause_on_fail, steps), repeat(self._touched.setdefault)))
        self._numbers = numbers_of(graph)  # a step's record is records[n]
        # The records by state, kept by ``apply``: counts, finished, idle.
        self.standing = Standing(graph, self.records)
        self.index = TagIndex(self.records)
        self.scheduler = Scheduler(graph, self.records, self.settings.max_parallel,
                                   self.settings.pools)
        for name in {self.settings.executor,
                     *(s.executor for s in optioned(graph) if s.executor)}:
            # Fail now, not at the first step, on a bad name (or a dask step with no address).
            make_executor(name, dask=self.settings.dask)
        self.steps = StepRuns(self)
        self.executors = self.steps.executors
        self.outbox = events.Outbox()
        self.stopping = False
        self.dag = DagFile(self.records, graph, self.timers)  # AutoTrail's JSON backup
        self.by: str | None = None  # who sent the request being served (api.handle sets it)
        # The context, saved in the journal when a step has ended (layer1/context.py).
        self.durable = durable.DurableContext(context, journal)
        self._finished_sent = False
        self.stopped = False  # an operator stopped it (stop, a signal): how it ends if unfinished
        self.step_logs: StepLogs | None = None  # each step's full output (engine sets it)

    @property
    def default_executor(self) -> str:
        return self.settings.executor

    # --- the one place a state changes ---------------------------------------------------

    def apply(self, record: StepRecord, action: Action, cause: str) -> None:
        """Move a step by ``action`` (the transition table says where), with its effects.

        Raises TransitionError, changing nothing, if the table does not allow the move.
        """
        old = record.state
        new = transition(old, action)
        cause = self.who(cause)
        if old is State.RUNNING:  # leaving Running: the run no longer holds a slot
            self.scheduler.free_slot(record.run_id)
            record.end_run()  # (and lets go of its environment: nothing talks to it now)
            if self.step_logs is not None:
                self.step_logs.ended(record.n)
            self.durable.dirty = True  # the step may have changed the context
        # (``_value_``: ``value`` is a property, and this runs a few times for every step.)
        if self.journal is not None:
            self.journal.transition(record.n, old._value_, new._value_, cause)
        record.set_state(new)
        self.standing.moved(record, old, new)
        if new in DONE_STATES and old not in DONE_STATES:
            self.scheduler.mark_done(record.step)
        elif new is State.FAILED:
            self.scheduler.mark_failed(record.step)
        if new in PENDING:
            self.scheduler.mark(record)
        if log.isEnabledFor(logging.INFO):
            log.info("step %s %s: %s -> %s (%s)", record.n, record.name, old, new, cause)
        if self.outbox.listening:
            # Leaving Running (an end, a retry, an interrupt) sets the value status shows.
            if old is State.RUNNING:
                event = events.StateChanged(n=record.n, name=record.name, state=new._value_,
                                            previous=old._value_, cause=cause,
                                            return_value=record.shown_return_value)
            else:
                event = events.StateChanged(n=record.n, name=record.name, state=new._value_,
                                            previous=old._value_, cause=cause)
            self.publish(event)

    def who(self, cause: str) -> str:
        """``cause`` with who asked, when a request that said so causes it."""
        return f"{cause} by {self.by}" if self.by and cause.startswith("api:") else cause

    def publish(self, event: events.Event) -> None:
        """Queue an event for the loop to send once this wake-up's changes are journaled."""
        self.outbox.publish(event)

    def say(self, record: StepRecord, kind: str, message: Any) -> None:
        """Journal and publish what a step said (output) or asked (prompt)."""
        if self.journal is not None:
            row = self.journal.message(record.n, record.attempt, kind, message)
            if kind == "output":
                gone = record.journaled_output(row, message)
                if gone:  # the journal keeps the same bounded tail as the record
                    self.journal.drop_messages(gone)
        if self.outbox.listening:
            event_type = {"output": events.Output, "prompt": events.Prompt}[kind]
            self.publish(event_type(n=record.n, name=record.name, message=message))

    def context_changed(self, parts: durable.Parts) -> None:
        """A step in a copy of the context (a forked process) changed these parts."""
        self.durable.changed(parts)

    # --- moving steps --------------------------------------------------------------------

    def advance(self) -> None:
        """Start or settle every step that can move now."""
        moved = 0
        while moved < MOVES_PER_WAKE_UP:
            moved += self.scheduler.due(
                self.timers.clock(), self.steps.start,
                lambda record: self.apply(record, Action.ARRIVE, "reached"),
                budget=MOVES_PER_WAKE_UP - moved)
            self.steps.launch()
            if not self.scheduler.marked:  # a step that could not start may mark others
                return

    @property
    def busy(self) -> bool:
        """Steps wait to be looked at: the loop should not sleep before the next wake-up."""
        return self.scheduler.marked

    # --- what the API handlers call ------------------------------------------------------

    def select(self, tags: dict[str, Any]) -> list[StepRecord]:
        """Steps whose tags include every given tag, by n (an unknown tag selects none)."""
        return self.index.select(tags)

    def record_of(self, step: Step) -> StepRecord:
        return self.records[self._numbers[step]]

    def records_of(self, steps: Iterable[Step]) -> list[StepRecord]:
        return by_n(self.records[self._numbers[step]] for step in steps)

    def interrupt(self, record: StepRecord, cause: str) -> None:
        """Stop a running step now; it becomes Interrupted (resume or rerun runs it again)."""
        run_id = record.run_id
        assert run_id is not None
        self.apply(record, Action.INTERRUPT, cause)
        self.steps.stop(record, run_id)

    def reply(self, record: StepRecord, message: Any, cause: str) -> None:
        """Hand an operator's answer to a running step."""
        cause = self.who(cause)
        record.add_input(message)
        if self.journal is not None:
            self.journal.message(record.n, record.attempt, "input", message, cause)
        self.publish(events.Input(n=record.n, name=record.name, message=message, cause=cause))
        if record.executor is not None and record.run_id is not None:
            record.executor.reply(record.run_id, message)

    def set_pause_on_fail(self, record: StepRecord, value: bool, cause: str) -> None:
        """Whether the step pauses (True) or fails for good when it fails."""
        cause = self.who(cause)
        record.set_pause_on_fail(value)
        log.info("step %s %s: pause on failure %s (%s)", record.n, record.name,
                 "set" if value else "unset", cause)
        self.publish(events.PauseOnFailChanged(n=record.n, name=record.name,
                                               pause_on_fail=value, cause=cause))

    def shut_down(self, cause: str) -> None:
        """Stop serving after this wake-up; running steps are interrupted on the way out."""
        if not self.stopping:
            self.stopping = True
            log.info("shutting down (%s)", cause)
            self.publish(events.ShuttingDown(cause=cause))

    def _check_finished(self) -> None:
        """Publish ``finished`` when the run becomes finished (again, after a rerun)."""
        if not self.standing.finished():
            self._finished_sent = False
        elif not self._finished_sent:
            self._finished_sent = True
            end = self.standing.end_state() or "failed"
            log.info("the run has finished: %s", end)
            self.publish(events.Finished(end=end, counts=self.standing.counts()))
            trim_heap()  # what running every step dropped (megabytes at 100,000) goes back

    # --- what lasts ----------------------------------------------------------------------

    def commit(self) -> None:
        """Write every step changed since the last commit, and commit (journal, DAG file).

        The context is saved with the steps whose end changed it: one transaction."""
        if self._touched:
            self._check_finished()
        self.durable.save()
        if not self._touched:
            if self.journal is not None:
                self.journal.commit()  # transitions and messages of unchanged steps
            return
        self.dag.changed()
        if self.journal is not None:
            self.journal.steps([
                (record.n, record.state.value, record.attempt, record.pause_on_fail,
                 record.return_value, record.started_at, record.finished_at, record.tries,
                 record.retry_at_wall if record.retrying else None)
                for record in self._touched])
            self.journal.commit()
        self._touched.clear()

    @property
    def dag_file(self) -> str | None:
        """AutoTrail's DAG file of this run (None: none), kept up to date as steps change."""
        return self.dag.path

    @dag_file.setter
    def dag_file(self, path: str | None) -> None:
        self.dag.path = path

    def save_dag_file(self) -> None:
        """Write AutoTrail's DAG file (if the run has one) with every step as it is now."""
        self.dag.save()

    def interrupt_running(self) -> None:
        """Interrupt every running step (the server is going); ``close`` comes after their
        stopped runs had their time to end (``Loop.serve``)."""
        for record in self.standing.in_state(State.RUNNING):
            self.interrupt(record, "shutdown")

    def close(self, grace: float | None = None) -> None:
        """Stop every executor, and whatever of a step is left (the server is going),
        within ``grace`` seconds (default: the longest grace period of any step)."""
        for record in self.standing.in_state(State.RUNNING):  # none, unless a test sets one
            self.apply(record, Action.INTERRUPT, "shutdown")
        if grace is None:
            grace = max((r.step.kill_grace for r in self.records), default=DEFAULT_GRACE)
        self.steps.close(grace)
        log.info("trail run stopped")


# Steps started or settled in one wake-up at most: the rest wait for the next, which comes
# at once. A wake-up of 100,000 starts would hold every request, event and journal commit
# until all were done, and all their events and transitions in memory at once.
MOVES_PER_WAKE_UP = 500


def take_up(run: Run, saved: dict[int, SavedStep], cause: str) -> None:
    """Take up a run where it stopped: done steps stay done; a step that was running
    comes back Interrupted (the operator decides), or Waiting if it is idempotent."""
    for record in run.records:
        if record.n in saved:
            record.restore(saved[record.n])
    run.standing.recount()
    run.steps.number_from(max((r.attempt for r in run.records), default=0) + 1)
    for record in run.records:
        if record.state is State.RUNNING:
            action = Action.RECOVER_AGAIN if record.step.idempotent else Action.RECOVER
            run.apply(record, action, f"{cause}: it was running")
        elif record.state.done:
            run.scheduler.mark_done(record.step)
        elif record.state in PENDING:
            run.scheduler.mark(record)
        retry_at = saved[record.n].retry_at if record.n in saved else None
        if record.state is State.WAITING and retry_at is not None:
            # A retry waits out what was left of its back-off, crash or not.
            wait = max(0.0, retry_at - time.time())
            record.schedule_retry(run.timers.clock() + wait, retry_at)
            run.timers.call_later(wait, functools.partial(run.scheduler.mark, record))


_name, _pause_on_fail = attrgetter("name"), attrgetter("pause_on_fail")
