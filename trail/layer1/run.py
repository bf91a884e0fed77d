"""The state of one run: every step's record, and every transition with its effects.

``Run.apply`` is the one place a step's state changes. It checks the move against the
transition table, journals it, and carries out what entering and leaving a state means:
leaving Running frees the step's slot and stamps its end; getting done lets its children
through; a pending state puts it before the scheduler; the change is published. Starting,
finishing, failing, retrying, interrupting and recovering a step all go through it.

There is no ZeroMQ here: the loop (``loop.py``) feeds the run requests, executor messages
and timers, and takes its journal commits and events. Tests drive a Run on a MockClock.
"""

from __future__ import annotations

import functools
import logging
import random
import signal
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from trail.core.dag import n_of, progeny, steps_in_order, strict_progeny, tags_of
from trail.core.states import Action, State, states_for, transition
from trail.core.step import Step
from trail.errors import StepProcessError, StepTimeoutError
from trail.layer1 import events, values
from trail.layer1.dagfile import write_dag_file
from trail.layer1.executors import Executor, Kind, Message, Outcome, make_executor
from trail.layer1.executors.base import signal_groups
from trail.layer1.executors.groups import ProcessGroups
from trail.layer1.executors.registry import Executors
from trail.layer1.journal import JournalRun, SavedStep
from trail.layer1.records import StepRecord, TagIndex, by_n
from trail.layer1.scheduler import PENDING, Scheduler
from trail.layer1.timers import Timers

log = logging.getLogger(__name__)

DEFAULT_GRACE = 2.0  # seconds from SIGTERM to SIGKILL where no step says otherwise


@dataclass
class Settings:
    """How a run runs its steps (what TrailServer and ``trail run`` let the operator pick)."""

    executor: str = "process"  # where steps run unless a step says otherwise
    max_parallel: int | None = None  # at most this many steps at once
    pools: dict[str, int] = field(default_factory=dict)  # pool tag -> steps at once
    step_output: str | None = None  # a file steps' own stdout/stderr go to
    random_fraction: Callable[[], float] = random.random  # the jitter's dice (fixed in tests)


class Run:
    """One run of a trail: its records, scheduler, executors and timers.

    Everything here happens on one thread (the loop's): no lock guards a record.
    ``journal`` (a JournalRun) receives every transition and message as it happens and
    each changed step at ``commit``; ``listening`` says whether anyone wants the events
    (``take_events``), so a run nobody watches skips building them.
    """

    def __init__(self, graph: nx.DiGraph, context: Any = None, settings: Settings | None = None,
                 *, journal: JournalRun | None = None, timers: Timers | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.graph = graph
        self.context = context
        self.settings = settings or Settings()
        self.journal = journal
        self.timers = timers or Timers()
        self.info = dict(info or {})
        self.records = [StepRecord(step, n_of(graph, step), step.name, step.pause_on_fail,
                                   tags_of(graph, step))
                        for step in steps_in_order(graph)]
        self._record_of = {record.step: record for record in self.records}
        self._touched: set[StepRecord] = set()  # changed since the last commit
        for record in self.records:
            record.on_change = self._touched.add
        self.index = TagIndex(self.records)
        self.scheduler = Scheduler(graph, self.records, self.settings.max_parallel,
                                   self.settings.pools)
        for name in {self.settings.executor, *(s.executor for s in graph if s.executor)}:
            make_executor(name)  # fail now, not at the first step, on a bad name
        self.executors = Executors(
            lambda name: make_executor(name, self.settings.step_output),
            self._on_message, self.timers.call_later)
        self.groups = ProcessGroups(self.timers.call_later)
        self._run_ids = iter(range(1, 1 << 62))
        self._seq = 0
        self._events: list[events.Event] = []
        self.listening = False
        self.stopping = False
        self.dag_file: str | None = None  # AutoTrail's JSON backup, written at each commit

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
        if old is State.RUNNING:  # leaving Running: the run no longer holds a slot
            self.scheduler.free_slot(record.run_id)
            record.end_run()
        if self.journal is not None:
            self.journal.transition(record.n, old.value, new.value, cause)
        record.set_state(new)
        if new.done and not old.done:
            self.scheduler.mark_done(record.step)
        if new in PENDING:
            self.scheduler.mark(record)
        log.info("step %s %s: %s -> %s (%s)", record.n, record.name, old, new, cause)
        if self.listening:
            # Leaving Running (an end, a retry, an interrupt) sets the value status shows.
            extra = {"return_value": record.shown_return_value} if old is State.RUNNING else {}
            self.publish(events.StateChanged(n=record.n, name=record.name, state=new.value,
                                             previous=old.value, cause=cause, **extra))

    def publish(self, event: events.Event) -> None:
        """Queue an event for the loop to send once this wake-up's changes are journaled."""
        if self.listening:
            self._seq += 1
            event = _stamped(event, self._seq)
            self._events.append(event)

    def take_events(self) -> list[events.Event]:
        taken, self._events = self._events, []
        return taken

    def _say(self, record: StepRecord, kind: str, message: Any) -> None:
        """Journal and publish what a step said (output), asked (prompt) or was told."""
        if self.journal is not None:
            self.journal.message(record.n, record.attempt, kind, message)
        if self.listening:
            event_type = {"output": events.Output, "prompt": events.Prompt}[kind]
            self.publish(event_type(n=record.n, name=record.name, message=message))

    # --- recovery ------------------------------------------------------------------------

    def restore(self, saved: dict[int, SavedStep], cause: str) -> None:
        """Take up a run where it stopped: done steps stay done; a step that was running
        comes back Interrupted (the operator decides), or Waiting if it is idempotent."""
        for record in self.records:
            if record.n in saved:
                record.restore(saved[record.n])
        later = max((r.attempt for r in self.records), default=0) + 1
        self._run_ids = iter(range(later, 1 << 62))  # new runs never reuse an attempt number
        for record in self.records:
            if record.state is State.RUNNING:
                action = Action.RECOVER_AGAIN if record.step.idempotent else Action.RECOVER
                self.apply(record, action, f"{cause}: it was running")
            elif record.state.done:
                self.scheduler.mark_done(record.step)
            elif record.state in PENDING:
                self.scheduler.mark(record)
            retry_at = saved[record.n].retry_at if record.n in saved else None
            if record.state is State.WAITING and retry_at is not None:
                # A retry waits out what was left of its back-off, crash or not.
                wait = max(0.0, retry_at - time.time())
                record.schedule_retry(self.timers.clock() + wait, retry_at)
                self.timers.call_later(wait, functools.partial(self.scheduler.mark, record))

    # --- moving steps --------------------------------------------------------------------

    def advance(self) -> None:
        """Start or settle every step that can move now."""
        self.scheduler.due(self.timers.clock(), self._start,
                           lambda record: self.apply(record, Action.ARRIVE, "reached"))

    def _start(self, record: StepRecord) -> None:
        step = record.step
        executor = self.executors.get(step.executor or self.settings.executor)
        run_id = next(self._run_ids)
        env = executor.prepare(run_id)
        record.begin_run(run_id, executor, env)
        self.apply(record, Action.RUN, "started")
        self.scheduler.take_slot(run_id, record)
        try:
            args, kwargs = step.pre_processor(env, self.context)
        except Exception as exc:
            executor.discard(run_id)
            self._fail(record, exc, traceback.format_exc(), "pre_processor raised")
            return
        # Write ahead: a step's side effects may begin the moment it starts, so its Running
        # is on disk before; a crash then brings it back Interrupted, never Waiting (which
        # would run it a second time without anyone deciding so).
        self.commit()
        try:
            fd = executor.start(run_id, step.action_function, args, kwargs)
        except OSError as exc:  # fork failed: no memory, too many processes
            executor.discard(run_id)
            self._fail(record, exc, traceback.format_exc(), "could not start")
            return
        if fd is not None:
            self.executors.watch(fd, executor)
        if step.timeout is not None:
            self.timers.call_later(step.timeout, lambda: self._time_out(record, run_id))

    def _on_message(self, message: Message) -> None:
        if message.kind == Kind.GROUP:
            record = self.scheduler.live.get(message.run_id)
            grace = record.step.kill_grace if record is not None else DEFAULT_GRACE
            self.groups.adopt(message.run_id, message.payload, record is not None, grace)
            return
        if message.kind == Kind.EXIT:
            self.groups.release(message.run_id)
        record = self.scheduler.live.get(message.run_id)
        if record is None:
            log.debug("dropped %s from run %s, which no longer counts", message.kind,
                      message.run_id)
            return
        if message.kind == Kind.OUTPUT:
            record.add_output(message.payload)
            self._say(record, "output", message.payload)
        elif message.kind == Kind.PROMPT:
            record.add_prompt(message.payload)
            self._say(record, "prompt", message.payload)
        elif message.kind == Kind.RESULT:
            self._finish(record, message.payload)
        elif message.kind == Kind.EXIT:
            error = StepProcessError(f"the step's process {message.payload} before it "
                                     f"reported a result")
            self._fail(record, error, "", str(error))

    def _finish(self, record: StepRecord, outcome: Outcome) -> None:
        if not outcome.ok:
            self._fail(record, outcome.value, outcome.traceback, "raised")
            return
        try:
            value = record.step.post_processor(record.environment, self.context, outcome.value)
        except Exception as exc:
            self._fail(record, exc, traceback.format_exc(), "post_processor raised")
            return
        record.set_return_value(value)
        self.apply(record, Action.SUCCEED, "returned")
        if record.step.conditional and value is False:
            self._skip_below(record, f"step {record.n} returned False")

    def _fail(self, record: StepRecord, error: BaseException, trace: str, cause: str) -> None:
        """End the latest run of a step as failed; later word from that run is ignored.

        With retries left (and ``retry_on`` agreeing) the step goes back to Waiting until
        its back-off has passed; the failure handler sees only the last failure.
        """
        if self._retry(record, error, cause):
            return
        log.error("step %s %s failed (%s): %s\n%s", record.n, record.name, cause,
                  values.shown(error), trace)
        try:
            value = record.step.failure_handler(record.environment, self.context, error)
        except Exception as exc:
            log.exception("the failure_handler of step %s %s raised", record.n, record.name)
            value = exc
        record.set_return_value(value)
        action = Action.FAIL_AND_PAUSE if record.pause_on_fail else Action.FAIL
        self.apply(record, action, cause)
        if record.step.skip_progeny_on_failure:
            self._skip_below(record, f"step {record.n} failed")

    def _retry(self, record: StepRecord, error: BaseException, cause: str) -> bool:
        step = record.step
        if record.state is not State.RUNNING or record.tries > step.retries:
            return False
        if step.retry_on is not None:
            try:
                if not step.retry_on(error):
                    return False
            except Exception:
                log.exception("retry_on of step %s %s raised; not retrying", record.n,
                              record.name)
                return False
        wait = step.retry_wait(record.tries, self.settings.random_fraction)
        record.set_return_value(error)
        note = (f"[trail] attempt {record.tries} of {step.retries + 1} failed "
                f"({values.shown(error)}); next attempt in {wait:.1f} s")
        record.add_output(note)
        self._say(record, "output", note)
        record.schedule_retry(self.timers.clock() + wait, time.time() + wait)
        self.apply(record, Action.RETRY, f"{cause}; retry in {wait:.1f} s")
        self.timers.call_later(wait, lambda: self.scheduler.mark(record))
        return True

    def _skip_below(self, record: StepRecord, cause: str) -> None:
        """Skip the strict progeny of a step: the branch only it leads to (AutoTrail's rule)."""
        eligible = states_for(Action.SKIP_PROGENY)
        below = strict_progeny(self.graph, [record.step]) - {record.step}
        for other in self.records_of(below):
            if other.state in eligible:
                self.apply(other, Action.SKIP_PROGENY, cause)

    def _time_out(self, record: StepRecord, run_id: int) -> None:
        if self.scheduler.live.get(run_id) is not record:
            return  # it ended (or was interrupted) in time
        self._stop(record, run_id)
        timeout = record.step.timeout or 0.0
        self._fail(record, StepTimeoutError(record.name, timeout), "", "timed out")

    def _stop(self, record: StepRecord, run_id: int) -> None:
        """SIGTERM the run now and SIGKILL whatever is left of it after its grace period."""
        executor: Executor | None = record.executor
        assert executor is not None
        executor.interrupt(run_id)
        grace = record.step.kill_grace
        self.groups.stop_run(run_id, grace)
        self.timers.call_later(grace, lambda: executor.kill(run_id))

    # --- what the API handlers call ------------------------------------------------------

    def select(self, tags: dict[str, Any]) -> list[StepRecord]:
        """Steps whose tags include every given tag, by n (an unknown tag selects none)."""
        return self.index.select(tags)

    def record_of(self, step: Step) -> StepRecord:
        return self._record_of[step]

    def records_of(self, steps: Iterable[Step]) -> list[StepRecord]:
        return by_n(self._record_of[step] for step in steps)

    def interrupt(self, record: StepRecord, cause: str) -> None:
        """Stop a running step now; it becomes Interrupted (resume or rerun runs it again)."""
        run_id = record.run_id
        assert run_id is not None
        self.apply(record, Action.INTERRUPT, cause)
        self._stop(record, run_id)

    def reply(self, record: StepRecord, message: Any, cause: str) -> None:
        """Hand an operator's answer to a running step."""
        record.add_input(message)
        if self.journal is not None:
            self.journal.message(record.n, record.attempt, "input", message)
        self.publish(events.Input(n=record.n, name=record.name, message=message, cause=cause))
        if record.executor is not None and record.run_id is not None:
            record.executor.reply(record.run_id, message)

    def set_pause_on_fail(self, record: StepRecord, value: bool, cause: str) -> None:
        """Whether the step pauses (True) or fails for good when it fails."""
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

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
        return counts

    def finished(self) -> bool:
        """Nothing will happen without an operator: every step finished or cut off."""
        cut_off: set[Step] = set()
        for record in self.records:
            if record.state.ignored:
                cut_off |= progeny(self.graph, [record.step])
        return all(r.state.finished or r.step in cut_off for r in self.records)

    # --- what lasts ----------------------------------------------------------------------

    def commit(self) -> None:
        """Write every step changed since the last commit, and commit (journal, DAG file)."""
        if not self._touched:
            if self.journal is not None:
                self.journal.commit()  # transitions and messages of unchanged steps
            return
        if self.dag_file is not None:
            write_dag_file(self.dag_file, self.records, self.graph)
        if self.journal is not None:
            for record in self._touched:
                self.journal.step(record.n, state=record.state.value, attempt=record.attempt,
                                  pause_on_fail=record.pause_on_fail,
                                  return_value=record.return_value,
                                  started_at=record.started_at,
                                  finished_at=record.finished_at, tries=record.tries,
                                  retry_at=record.retry_at_wall if record.retrying else None)
            self.journal.commit()
        self._touched.clear()

    def close(self) -> None:
        """Interrupt every running step and stop every executor (the server is going)."""
        grace = max((r.step.kill_grace for r in self.records), default=DEFAULT_GRACE)
        for record in self.records:
            if record.state is State.RUNNING:
                self.apply(record, Action.INTERRUPT, "shutdown")
        adopted = self.groups.all()
        signal_groups(adopted, signal.SIGTERM)
        self.executors.close(grace)  # waits up to the grace for the steps to end
        signal_groups(adopted, signal.SIGKILL)
        log.info("trail run stopped")


def _stamped(event: events.Event, seq: int) -> events.Event:
    return replace(event, seq=seq, time=time.time())
