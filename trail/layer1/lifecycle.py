"""A step's run from start to end: its executor, what it reports, failures, retries,
timeouts and stops. Every state change it makes goes through ``Run.apply``."""

from __future__ import annotations

import functools
import logging
import signal
import time
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from trail.core.dag import strict_progeny
from trail.core.states import Action, State, states_for
from trail.errors import StepProcessError, StepTimeoutError
from trail.layer1 import events, values
from trail.layer1.executors import Executor, Kind, Message, Outcome, make_executor
from trail.layer1.executors.base import signal_groups
from trail.layer1.executors.groups import ProcessGroups
from trail.layer1.executors.registry import Executors
from trail.layer1.records import StepRecord
from trail.layer1.stops import STOP_REPORT_MARGIN, StoppedRuns, stop_line

if TYPE_CHECKING:
    from trail.core.dag import TrailGraph
    from trail.core.states import Action as _Action
    from trail.core.step import Step
    from trail.layer1.context import Parts
    from trail.layer1.journal import JournalRun
    from trail.layer1.scheduler import Scheduler
    from trail.layer1.settings import Settings
    from trail.layer1.steplogs import StepLogs
    from trail.layer1.timers import Timers


class Run(Protocol):
    """What a step's run needs of the run it belongs to (``trail.layer1.run.Run``): named
    here so that this module does not import that one, which builds a StepRuns."""

    graph: TrailGraph
    context: Any
    settings: Settings
    journal: JournalRun | None
    timers: Timers
    scheduler: Scheduler
    step_logs: StepLogs | None

    def apply(self, record: StepRecord, action: _Action, cause: str) -> None: ...

    def commit(self) -> None: ...

    def say(self, record: StepRecord, kind: str, message: Any) -> None: ...

    def publish(self, event: events.Event) -> None: ...

    def records_of(self, steps: Iterable[Step]) -> list[StepRecord]: ...

    def context_changed(self, parts: Parts) -> None: ...

log = logging.getLogger(__name__)

DEFAULT_GRACE = 2.0  # seconds from SIGTERM to SIGKILL where no step says otherwise

class StepRuns:
    """Starts steps on their executors and ends their runs, for one Run."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.executors = Executors(self._make_executor, self._on_message,
                                   run.timers.call_later)
        self.groups = ProcessGroups(run.timers.call_later)
        self._ids = iter(range(1, 1 << 62))
        # Steps made Running in this pass, waiting for the commit before they start:
        # (record, run id, executor, args, kwargs).
        self._launches: list[tuple[StepRecord, int, Executor, Any, Any]] = []
        self.stops = StoppedRuns(run.timers, self._output, run.publish)

    def _make_executor(self, name: str) -> Executor:
        executor = make_executor(name, self.run.settings.step_output, self.run.settings.dask)
        executor.context = self.run.context
        return executor

    def number_from(self, first: int) -> None:
        """New runs are numbered from ``first``: a taken-up run never reuses an attempt."""
        self._ids = iter(range(first, 1 << 62))

    def start(self, record: StepRecord) -> None:
        """Make a Waiting step Running and queue its run; ``launch`` hands it to its
        executor once every step started in this pass is journaled as Running."""
        step = record.step
        executor = self.executors.get(step.executor or self.run.settings.executor)
        run_id = next(self._ids)
        env = executor.prepare(run_id)
        if step.gate:  # what it decides on: the failures above it
            failed = self.run.scheduler.gate_failures(step) or []
            env.failed_above = tuple(other.name for other in failed)
        record.begin_run(run_id, executor, env)
        self.run.apply(record, Action.RUN, "started")
        self.run.scheduler.take_slot(run_id, record)
        where = executor.where(run_id)
        if where is not None and self.run.journal is not None:
            # In the commit that journals it Running: a take-up after a crash at any
            # moment from its start on finds where to look for it.
            self.run.journal.message(record.n, record.attempt, Kind.WHERE, where)
        try:
            args, kwargs = step.pre_processor(env, self.run.context)
        except Exception as exc:
            executor.discard(run_id)
            self._fail(record, exc, traceback.format_exc(), "pre_processor raised")
            return
        self._launches.append((record, run_id, executor, args, kwargs))

    def launch(self) -> None:
        """Hand the steps ``start`` queued to their executors.

        Write ahead: a step's side effects may begin the moment it starts, so its Running
        is on disk before; a crash then brings it back Interrupted, never Waiting (which
        would run it a second time without anyone deciding so). One commit covers every
        step started in the same pass, however many.
        """
        if not self._launches:
            return
        self.run.commit()
        launches, self._launches = self._launches, []
        for record, run_id, executor, args, kwargs in launches:
            if self.run.scheduler.live.get(run_id) is not record:
                executor.discard(run_id)  # stopped before it could start
                continue
            step = record.step
            try:
                fd = executor.start(run_id, step.action_function, args, kwargs)
            except OSError as exc:  # fork failed: no memory, too many processes
                executor.discard(run_id)
                self._fail(record, exc, traceback.format_exc(), "could not start")
                continue
            if fd is not None:
                self.executors.watch(fd, executor)
            if step.timeout is not None:
                self.run.timers.call_later(step.timeout,
                                           functools.partial(self._time_out, record, run_id))

    def _on_message(self, message: Message) -> None:
        if message.kind == Kind.GROUP:
            record = self.run.scheduler.live.get(message.run_id)
            grace = record.step.kill_grace if record is not None else DEFAULT_GRACE
            pgid, after = (message.payload if isinstance(message.payload, (tuple, list))
                           else (message.payload, None))
            self.groups.adopt(message.run_id, pgid, record is not None, grace, after)
            return
        if message.kind == Kind.EXIT:
            self.groups.release(message.run_id)
        record = self.run.scheduler.live.get(message.run_id)
        if record is None:
            if not self.stops.take(message):
                log.debug("dropped %s from run %s, which no longer counts", message.kind,
                          message.run_id)
            return
        if message.kind == Kind.WHERE:
            log.info("step %s %s: %s", record.n, record.name, message.payload)
            if self.run.journal is not None:
                self.run.journal.message(record.n, record.attempt, Kind.WHERE, message.payload)
        elif message.kind == Kind.OUTPUT:
            self._output(record, values.clipped(message.payload))  # a thread-run step's
        elif message.kind == Kind.STOP:  # a report before the stop reached the manager
            self._output(record, stop_line(message.payload))
        elif message.kind == Kind.PROMPT:
            record.add_prompt(message.payload)
            self.run.say(record, "prompt", message.payload)
        elif message.kind == Kind.RESULT:
            self._finish(record, message.payload)
        elif message.kind == Kind.EXIT:
            error = StepProcessError(f"the step's process {message.payload} before it "
                                     f"reported a result")
            self._fail(record, error, "", str(error))

    def _output(self, record: StepRecord, said: Any) -> None:
        record.add_output(said)
        self.run.say(record, "output", said)
        if self.run.step_logs is not None:
            self.run.step_logs.write(record.n, said)

    def _finish(self, record: StepRecord, outcome: Outcome) -> None:
        if outcome.context:
            self.run.context_changed(outcome.context)
        if not outcome.ok:
            self._fail(record, outcome.value, outcome.traceback, "raised")
            return
        try:
            value = record.step.post_processor(record.environment, self.run.context, outcome.value)
        except Exception as exc:
            self._fail(record, exc, traceback.format_exc(), "post_processor raised")
            return
        record.set_return_value(value)
        self.run.apply(record, Action.SUCCEED, "returned")
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
            value = record.step.failure_handler(record.environment, self.run.context, error)
        except Exception as exc:
            log.exception("the failure_handler of step %s %s raised", record.n, record.name)
            value = exc
        record.set_return_value(value)
        action = Action.FAIL_AND_PAUSE if record.pause_on_fail else Action.FAIL
        # The cause carries the error, so `trail history` says what went wrong.
        error_text = values.shown(error)
        if len(error_text) > 300:
            error_text = error_text[:299] + "…"
        self.run.apply(record, action, f"{cause}: {error_text}")
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
        wait = step.retry_wait(record.tries, self.run.settings.random_fraction)
        record.set_return_value(error)
        note = (f"[trail] attempt {record.tries} of {step.retries + 1} failed "
                f"({values.shown(error)}); next attempt in {wait:.1f} s")
        record.add_output(note)
        self.run.say(record, "output", note)
        if self.run.step_logs is not None:
            self.run.step_logs.write(record.n, note)
        record.schedule_retry(self.run.timers.clock() + wait, time.time() + wait)
        self.run.apply(record, Action.RETRY, f"{cause}; retry in {wait:.1f} s")
        self.run.timers.call_later(wait, lambda: self.run.scheduler.mark(record))
        return True

    def _skip_below(self, record: StepRecord, cause: str) -> None:
        """Skip the strict progeny of a step: the branch only it leads to (AutoTrail's rule)."""
        eligible = states_for(Action.SKIP_PROGENY)
        below = strict_progeny(self.run.graph, [record.step]) - {record.step}
        for other in self.run.records_of(below):
            if other.state in eligible:
                self.run.apply(other, Action.SKIP_PROGENY, cause)

    def _time_out(self, record: StepRecord, run_id: int) -> None:
        if self.run.scheduler.live.get(run_id) is not record:
            return  # it ended (or was interrupted) in time
        self.stop(record, run_id)
        timeout = record.step.timeout or 0.0
        self._fail(record, StepTimeoutError(record.name, timeout), "", "timed out")

    def stop(self, record: StepRecord, run_id: int) -> None:
        """SIGTERM the run now and SIGKILL whatever is left of it after its grace period."""
        executor: Executor | None = record.executor
        assert executor is not None
        grace = record.step.kill_grace
        # A run that stops its commands itself (they may be on other hosts) has the time
        # it said that takes before it is killed, and is listened to meanwhile, as they
        # stop and say so; any other run gets its grace period.
        itself = self.groups.stops_itself(run_id)
        kill_at = grace if itself is None else max(grace, itself)
        wait = kill_at + (0.0 if itself is None else STOP_REPORT_MARGIN)
        self.stops.begin(record, run_id, wait)
        executor.interrupt(run_id)
        self.groups.stop_run(run_id, grace)
        self.run.timers.call_later(kill_at, lambda: executor.kill(run_id))

    def close(self, grace: float) -> None:
        """Stop every executor and adopted process group (running steps were interrupted)."""
        adopted = self.groups.all()
        signal_groups(adopted, signal.SIGTERM)
        self.executors.close(grace)  # waits up to the grace for the steps to end
        signal_groups(adopted, signal.SIGKILL)

