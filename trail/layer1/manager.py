"""The trail manager: one event loop that owns every state change of a run.

It blocks in one ``zmq.Poller.poll`` on the API socket, the executors' result channels and
the next timer (a step's timeout, a kill after a grace period). Each wake-up serves the API
requests that arrived, applies what steps reported, fires due timers, then advances every
step that can advance, publishes what changed, and goes back to poll. It never sleeps a
fixed delay, and nothing outside this loop's thread assigns a step's state, so no lock
guards it.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import logging
import os
import random
import signal
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import zmq

from trail.core.dag import Frontier, pool_sizes, progeny, strict_progeny
from trail.core.states import Action, State, states_for, transition
from trail.core.step import Step
from trail.errors import RemoteStepError, StepProcessError, StepTimeoutError, TrailError
from trail.layer1.executors import Executor, Kind, Message, Outcome, make_executor
from trail.layer1.executors.base import TrailEnvironment, signal_groups
from trail.layer1.journal import Journal, SavedStep
from trail.layer1.wire import ProtocolError, Reply, error_reply, parse_request, request_id

log = logging.getLogger(__name__)

_NOT_A_TAG = object()
DEFAULT_GRACE = 2.0  # seconds from SIGTERM to SIGKILL where no step says otherwise
_ENDED = frozenset({State.SUCCEEDED, State.FAILED, State.PAUSED_ON_FAIL})  # events carry the value


def wire_value(value: Any) -> Any:
    """A return value as the API shows it: ``values.shown``, the one codec for values.

    An exception shows as ``Type: message`` (AutoTrail showed only the message); one that
    could not cross from the step's process shows as the type it had there.
    """
    from trail.layer1 import values  # here, so this change stays within this function

    if isinstance(value, RemoteStepError):  # as values.shown does; keeps the import in use
        return str(value)                    # while manager.py is being split (then drop it)
    return values.shown(value)


_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode


@dataclass(eq=False)
class StepRecord:
    """The manager's record of one step in this run: its state and run-time data.

    Change it only through its methods: each bumps ``version``, which keys the cache of
    encoded status rows (a status call re-encodes only the steps that changed).
    """

    step: Step
    n: int
    name: str
    pause_on_fail: bool
    state: State = State.READY
    return_value: Any = None
    shown_return_value: Any = None  # wire_value(return_value), kept for status calls
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
    retry_at: float | None = None  # monotonic time before which a retry must not start
    retry_at_wall: float | None = None  # the same, wall clock, for status
    version: int = 0
    on_change: Callable[[StepRecord], None] | None = field(default=None, repr=False)
    _rows: dict[tuple[str, ...], tuple[int, bytes]] = field(default_factory=dict)

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
        own = self.step.tags
        return all(own.get(key, _NOT_A_TAG) == value for key, value in tags.items())

    def encoded_row(self, fields: tuple[str, ...], make: Callable[[], Any]) -> bytes:
        """The JSON of ``make()``, this step's status row for ``fields``, cached per version."""
        cached = self._rows.get(fields)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        data = _encode(make()).encode()
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
        self.shown_return_value = wire_value(value)
        self._changed()

    def add_output(self, message: Any) -> None:
        self.output_messages.append(message)
        self._changed()

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
        self.prompt_messages = list(saved.prompts)
        self.input_messages = list(saved.inputs)
        self.tries = saved.tries
        self._changed()


class Timers:
    """Callbacks due at moments of ``clock``; the loop sleeps until the first is due."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (self.clock() + delay, next(self._seq), callback))

    def wait_ms(self) -> int | None:
        """Milliseconds until the next timer (rounded up), or None when there is none."""
        if not self._heap:
            return None
        return max(0, int((self._heap[0][0] - self.clock()) * 1000) + 1)

    def run_due(self) -> None:
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            callback()


class TrailManager:
    """Runs one trail: the records, the loop, and the moves the API handlers ask for."""

    def __init__(
        self,
        graph: nx.DiGraph,
        api_socket: zmq.Socket,
        events_socket: zmq.Socket | None = None,
        context: Any = None,
        executor: str = "process",
        clock: Callable[[], float] = time.monotonic,
        info: dict[str, Any] | None = None,
        max_parallel: int | None = None,
        pools: dict[str, int] | None = None,
        random_fraction: Callable[[], float] = random.random,
        step_output: str | None = None,
        journal: Journal | None = None,
        journal_run: int | None = None,
        restored: dict[int, SavedStep] | None = None,
    ) -> None:
        self.graph = graph
        self.step_output = step_output
        if max_parallel is not None and max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1: {max_parallel!r}")
        self.max_parallel = max_parallel
        self.pools = {**pool_sizes(graph), **(pools or {})}
        self._in_pool: dict[str, int] = dict.fromkeys(self.pools, 0)
        self._held: set[StepRecord] = set()  # reached and Waiting, but no slot free
        self._random = random_fraction  # injectable: tests may fix the jitter
        self.journal = journal
        self.journal_run = journal_run
        self.context = context
        self.api_socket = api_socket
        self.events_socket = events_socket
        self.default_executor = executor
        self.info = dict(info or {})
        self.records = [
            StepRecord(step, step.tags["n"], step.name, step.pause_on_fail)
            for step in sorted(graph.nodes, key=lambda s: s.tags["n"])
        ]
        self._touched: set[StepRecord] = set()  # changed since the last commit
        self._replies: list[list[bytes]] = []  # sent once the wake-up's changes are committed
        self._events: list[bytes] = []
        self.dag_file: str | None = None  # AutoTrail's JSON backup, written when set
        for record in self.records:
            record.on_change = self._touched.add
        self._record_of = {record.step: record for record in self.records}
        self._tag_index: dict[str, dict[Any, list[StepRecord]] | None] = {}
        self._subscribers = 0
        self._frontier = Frontier(graph)
        # Steps to look at in the next advance, highest priority first, then by n.
        self._dirty: list[tuple[int, int]] = []
        self._dirty_set: set[int] = set()
        self._live: dict[int, StepRecord] = {}  # run id -> record, while the run counts
        self._groups: dict[int, list[int]] = {}  # run id -> process groups it adopted
        self._run_ids = itertools.count(1)
        self._event_seq = itertools.count(1)
        self.timers = Timers(clock)
        self._executors: dict[str, Executor] = {}
        self._fd_owner: dict[int, Executor] = {}
        self._poller = zmq.Poller()
        self._poller.register(api_socket, zmq.POLLIN)
        if events_socket is not None and events_socket.type == zmq.XPUB:
            self._poller.register(events_socket, zmq.POLLIN)
        self.stopping = False
        make_executor(executor)  # fail now, not at the first step, on a bad name
        for step in graph.nodes:
            if step.executor is not None:
                make_executor(step.executor)
        if restored:
            self.restore(restored, "recovered from the journal")

    def restore(self, saved: dict[int, SavedStep], cause: str) -> None:
        """Take up a run where it stopped: done steps stay done, a step that was running
        comes back Interrupted (the operator decides), or Waiting if it is idempotent."""
        for record in self.records:
            if record.n in saved:
                record.restore(saved[record.n])
        later = max((r.attempt for r in self.records), default=0) + 1
        self._run_ids = itertools.count(later)  # new runs never reuse an attempt number
        for record in self.records:
            if record.state is State.RUNNING:
                was_running = State.WAITING if record.step.idempotent else State.INTERRUPTED
                self._journal_transition(record, State.RUNNING, was_running,
                                         f"{cause}: it was running")
                record.set_state(was_running)
            if record.state.done:
                self._frontier.mark_done(record.step)
            retry_at = saved[record.n].retry_at if record.n in saved else None
            if record.state is State.WAITING and retry_at is not None:
                # A retry waits out what was left of its back-off, crash or not.
                wait = max(0.0, retry_at - time.time())
                record.schedule_retry(self.timers.clock() + wait, retry_at)
                self.timers.call_later(wait, functools.partial(self._mark_dirty, record))
        for record in self.records:
            if record.state in (State.WAITING, State.TO_PAUSE, State.TO_SKIP, State.TO_BLOCK):
                self._mark_dirty(record)

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Serve and run the trail until a shutdown call; then stop every running step."""
        from trail.layer1.api import HANDLERS  # api imports this module's types

        self._handlers = HANDLERS
        log.info("trail manager serving %d steps", len(self.records))
        try:
            # This 'while' loop right here is the event loop: every state change of the run
            # happens inside it, on this thread.
            while not self.stopping:
                wait = self.timers.wait_ms()
                log.debug("polling for %s", "ever" if wait is None else f"{wait} ms (timer)")
                ready = self._poller.poll(wait)
                for item, _ in ready:
                    if item is self.api_socket:
                        self._serve_requests()
                    elif item is self.events_socket:
                        self._greet_subscribers()
                for item, _ in ready:
                    if isinstance(item, int):
                        self._collect(item)
                self.timers.run_due()
                self._advance()
                self._flush()
        finally:
            self._close()
            self._flush()
            if self.journal is not None and self.journal_run is not None:
                self.journal.close_run(self.journal_run, "shut down")

    def _collect(self, fd: int) -> None:
        owner = self._fd_owner.get(fd)
        if owner is not None and owner.collect(fd) and fd not in owner.watch():
            self._poller.unregister(fd)
            del self._fd_owner[fd]

    def _serve_requests(self) -> None:
        while True:
            try:
                frames = self.api_socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # ROUTER frames: the peer's identity, maybe an empty delimiter, then the body.
            envelope, body = frames[:-1], frames[-1]
            self._replies.append([*envelope, self.handle(body).to_json()])

    def _flush_journal(self) -> None:
        """Write the changed steps and commit the open transaction."""
        if self.journal is not None and self.journal_run is not None:
            for record in self._touched:
                self.journal.step(self.journal_run, record.n, state=record.state.value,
                                  attempt=record.attempt,
                                  pause_on_fail=record.pause_on_fail,
                                  return_value=record.return_value,
                                  started_at=record.started_at,
                                  finished_at=record.finished_at,
                                  tries=record.tries,
                                  retry_at=record.retry_at_wall if record.retrying else None)
            self.journal.commit()
        self._touched.clear()

    def _flush(self) -> None:
        """Commit this wake-up's changes, then let its replies and events go.

        Nothing is acknowledged or published before it is in the journal.
        """
        if self._touched and self.dag_file is not None:
            write_dag_file(self.dag_file, self.records, self.graph)
        self._flush_journal()
        for event in self._events:
            try:
                self.events_socket.send(event, zmq.NOBLOCK)  # type: ignore[union-attr]
            except zmq.ZMQError as exc:
                log.warning("could not publish an event: %s", exc)
        for frames in self._replies:
            try:
                self.api_socket.send_multipart(frames, zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # the client went away; the run goes on
                log.warning("could not send a reply: %s", exc)
        self._events.clear()
        self._replies.clear()

    def _greet_subscribers(self) -> None:
        assert self.events_socket is not None
        while True:
            try:
                note = self.events_socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if note[:1] == b"\x01":  # a subscription
                self._subscribers += 1
                self._send_event({"kind": "hello"})
            elif note[:1] == b"\x00":  # an unsubscription, or a subscriber gone
                self._subscribers -= 1

    def handle(self, body: bytes) -> Reply:
        """Answer one request; any failure becomes an error reply, never a crash."""
        try:
            request = parse_request(body)
        except ProtocolError as exc:
            log.warning("refused a request: %s", exc)
            return error_reply(request_id(body), exc)
        except Exception as exc:  # a request no check foresaw must not stop the server
            log.exception("could not read a request")
            return error_reply(request_id(body), ProtocolError(f"unreadable request: {exc}"))
        try:
            result = self._handlers[request.call](self, request.args)
        except TrailError as exc:
            return error_reply(request.id, exc)
        except Exception as exc:
            log.exception("the %s call failed", request.call)
            return error_reply(request.id, exc)
        return Reply(request.id, True, result)

    def _close(self) -> None:
        grace = max((r.step.kill_grace for r in self.records), default=2.0)
        for record in self.records:
            if record.state is State.RUNNING:
                self.apply(record, Action.INTERRUPT, "shutdown")
                record.end_run()
        adopted = [pgid for groups in self._groups.values() for pgid in groups]
        signal_groups(adopted, signal.SIGTERM)
        for executor in self._executors.values():
            executor.close(grace)
        signal_groups(adopted, signal.SIGKILL)
        log.info("trail manager stopped")

    # --- state changes -------------------------------------------------------------------

    def apply(self, record: StepRecord, action: Action, cause: str) -> None:
        """Move a step by ``action`` (the transition table says where), and publish it."""
        old = record.state
        new = transition(old, action)
        self._journal_transition(record, old, new, cause)
        record.set_state(new)
        if new.done and not old.done:
            for child in self._frontier.mark_done(record.step):
                self._mark_dirty(self._record_of[child])
        if new in (State.WAITING, State.TO_PAUSE, State.TO_SKIP, State.TO_BLOCK):
            self._mark_dirty(record)
        log.info("step %s %s: %s -> %s (%s)", record.n, record.name, old, new, cause)
        if new in _ENDED:
            self.publish("state", record, state=new.value, previous=old.value, cause=cause,
                         return_value=record.shown_return_value)
        else:
            self.publish("state", record, state=new.value, previous=old.value, cause=cause)

    def _journal_transition(self, record: StepRecord, old: State, new: State, cause: str) -> None:
        if self.journal is not None and self.journal_run is not None:
            self.journal.transition(self.journal_run, record.n, old.value, new.value, cause)

    def _journal_message(self, record: StepRecord, kind: str, message: Any) -> None:
        if self.journal is not None and self.journal_run is not None:
            self.journal.message(self.journal_run, record.n, record.attempt, kind, message)

    def _mark_dirty(self, record: StepRecord) -> None:
        if record.n not in self._dirty_set:
            self._dirty_set.add(record.n)
            heapq.heappush(self._dirty, (-record.step.priority, record.n))

    def _advance(self) -> None:
        """Move every step whose parents are done and which has somewhere to go."""
        while self._dirty:
            _, n = heapq.heappop(self._dirty)
            self._dirty_set.discard(n)
            record = self.records[n]
            if not self._frontier.reached(record.step):
                continue
            if record.state is State.WAITING:
                if record.retry_at is not None and record.retry_at > self.timers.clock():
                    continue  # its timer brings it back
                if not self._slot_free(record):
                    self._held.add(record)
                    continue
                self._start(record)
            elif record.state in (State.TO_PAUSE, State.TO_SKIP, State.TO_BLOCK):
                self.apply(record, Action.ARRIVE, "reached")

    def _slot_free(self, record: StepRecord) -> bool:
        if self.max_parallel is not None and len(self._live) >= self.max_parallel:
            return False
        pool = record.step.tags.get("pool")
        return pool not in self.pools or self._in_pool[pool] < self.pools[pool]

    def _go_live(self, run_id: int, record: StepRecord) -> None:
        self._live[run_id] = record
        pool = record.step.tags.get("pool")
        if pool in self._in_pool:
            self._in_pool[pool] += 1

    def _end_live(self, run_id: int | None) -> StepRecord | None:
        """The run no longer counts: free its slot, and look again at the steps held."""
        record = self._live.pop(run_id or 0, None)
        if record is None:
            return None
        pool = record.step.tags.get("pool")
        if pool in self._in_pool:
            self._in_pool[pool] -= 1
        for held in self._held:
            self._mark_dirty(held)
        self._held.clear()
        return record

    def publish(self, kind: str, record: StepRecord, **fields: Any) -> None:
        """Tell subscribers what happened to a step (a state change, output, a prompt)."""
        self._send_event({"kind": kind, "n": record.n, "name": record.name, **fields})

    def _send_event(self, event: dict[str, Any]) -> None:
        if self.events_socket is None or self._subscribers <= 0:
            return  # nobody listens: skip the encoding
        event = {"seq": next(self._event_seq), "time": time.time(), **event}
        self._events.append(_encode(event).encode())

    # --- running steps -------------------------------------------------------------------

    def _executor(self, name: str) -> Executor:
        executor = self._executors.get(name)
        if executor is None:
            executor = self._executors[name] = make_executor(name, self.step_output)
            executor.bind(self._on_message, self.timers.call_later)
            for fd in executor.watch():
                self._watch(fd, executor)
        return executor

    def _watch(self, fd: int, executor: Executor) -> None:
        self._fd_owner[fd] = executor
        self._poller.register(fd, zmq.POLLIN)

    def _start(self, record: StepRecord) -> None:
        step = record.step
        executor = self._executor(step.executor or self.default_executor)
        run_id = next(self._run_ids)
        env = executor.prepare(run_id)
        record.begin_run(run_id, executor, env)
        self.apply(record, Action.RUN, "started")
        self._go_live(run_id, record)
        try:
            args, kwargs = step.pre_processor(env, self.context)
        except Exception as exc:
            executor.discard(run_id)
            self._fail(record, exc, traceback.format_exc(), "pre_processor raised")
            return
        if self.journal is not None:
            # Write ahead: a step's side effects may begin the moment it starts, so its
            # Running is on disk before; a crash then brings it back Interrupted, never
            # Waiting (which would run it a second time without anyone deciding so).
            self._flush_journal()
        try:
            fd = executor.start(run_id, step.action_function, args, kwargs)
        except OSError as exc:  # fork failed: no memory, too many processes
            executor.discard(run_id)
            self._fail(record, exc, traceback.format_exc(), "could not start")
            return
        if fd is not None:
            self._watch(fd, executor)
        if step.timeout is not None:
            self.timers.call_later(step.timeout, lambda: self._time_out(record, run_id))

    def _on_message(self, message: Message) -> None:
        if message.kind == Kind.GROUP:
            self._adopt(message.run_id, message.payload)
            return
        if message.kind == Kind.EXIT:
            self._groups.pop(message.run_id, None)
        record = self._live.get(message.run_id)
        if record is None:
            log.debug("dropped %s from run %s, which no longer counts", message.kind,
                      message.run_id)
            return
        if message.kind == Kind.OUTPUT:
            record.add_output(message.payload)
            self._journal_message(record, "output", message.payload)
            self.publish("output", record, message=message.payload)
        elif message.kind == Kind.PROMPT:
            record.add_prompt(message.payload)
            self._journal_message(record, "prompt", message.payload)
            self.publish("prompt", record, message=message.payload)
        elif message.kind == Kind.RESULT:
            self._finish(record, message.payload)
        elif message.kind == Kind.EXIT:
            error = StepProcessError(f"the step's process {message.payload} before it "
                                     f"reported a result")
            self._fail(record, error, "", str(error))

    def _finish(self, record: StepRecord, outcome: Outcome) -> None:
        self._end_live(record.run_id)
        record.end_run()
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
        self._end_live(record.run_id)
        record.end_run()
        if self._retry(record, error, cause):
            return
        log.error("step %s %s failed (%s): %s\n%s", record.n, record.name, cause,
                  wire_value(error), trace)
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
        wait = step.retry_wait(record.tries, self._random)
        record.set_return_value(error)
        note = (f"[trail] attempt {record.tries} of {step.retries + 1} failed "
                f"({wire_value(error)}); next attempt in {wait:.1f} s")
        record.add_output(note)
        self._journal_message(record, "output", note)
        self.publish("output", record, message=note)
        record.schedule_retry(self.timers.clock() + wait, time.time() + wait)
        self.apply(record, Action.RETRY, f"{cause}; retry in {wait:.1f} s")
        self.timers.call_later(wait, lambda: self._mark_dirty(record))
        return True

    def _skip_below(self, record: StepRecord, cause: str) -> None:
        """Skip the strict progeny of a step: the branch only it leads to (AutoTrail's rule)."""
        eligible = states_for(Action.SKIP_PROGENY)
        below = strict_progeny(self.graph, [record.step]) - {record.step}
        for other in sorted((self._record_of[s] for s in below), key=lambda r: r.n):
            if other.state in eligible:
                self.apply(other, Action.SKIP_PROGENY, cause)

    def _time_out(self, record: StepRecord, run_id: int) -> None:
        if self._live.get(run_id) is not record:
            return  # it ended (or was interrupted) in time
        self._stop_run(record, run_id)
        timeout = record.step.timeout or 0.0
        self._fail(record, StepTimeoutError(record.name, timeout), "", "timed out")

    def _stop_run(self, record: StepRecord, run_id: int) -> None:
        """SIGTERM the run now and SIGKILL whatever is left of it after its grace period."""
        executor = record.executor
        assert executor is not None
        executor.interrupt(run_id)
        groups = self._groups.pop(run_id, [])
        signal_groups(groups, signal.SIGTERM)

        def kill() -> None:
            executor.kill(run_id)
            signal_groups(groups, signal.SIGKILL)

        self.timers.call_later(record.step.kill_grace, kill)

    def _adopt(self, run_id: int, pgid: int) -> None:
        record = self._live.get(run_id)
        if record is None:  # the run was stopped before its word arrived: stop this too
            signal_groups([pgid], signal.SIGTERM)
            self.timers.call_later(DEFAULT_GRACE,
                                   lambda: signal_groups([pgid], signal.SIGKILL))
            return
        self._groups.setdefault(run_id, []).append(pgid)

    # --- what the API handlers call ------------------------------------------------------

    def select(self, tags: dict[str, Any]) -> list[StepRecord]:
        """Steps whose tags include every given tag, by n (an unknown tag selects none).

        Looks up an index per tag key (built on first use; tags are fixed once a trail
        serves), so picking one step of a thousand by name costs no scan.
        """
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
        """The steps whose tag ``key`` equals ``value``; None if that key can't be indexed."""
        if key not in self._tag_index:
            index: dict[Any, list[StepRecord]] | None = {}
            try:
                for record in self.records:
                    if key in record.step.tags:
                        index.setdefault(record.step.tags[key], []).append(record)  # type: ignore[union-attr]
            except TypeError:  # an unhashable tag value: this key is searched by scan
                index = None
            self._tag_index[key] = index
        index = self._tag_index[key]
        if index is None:
            return None
        try:
            return index.get(value, [])
        except TypeError:
            return None

    def record_of(self, step: Step) -> StepRecord:
        return self._record_of[step]

    def interrupt(self, record: StepRecord, cause: str) -> None:
        run_id = record.run_id
        assert run_id is not None
        self._end_live(run_id)
        record.end_run()
        self.apply(record, Action.INTERRUPT, cause)
        self._stop_run(record, run_id)

    def reply(self, record: StepRecord, message: Any, cause: str) -> None:
        record.add_input(message)
        self._journal_message(record, "input", message)
        self.publish("input", record, message=message, cause=cause)
        if record.executor is not None and record.run_id is not None:
            record.executor.reply(record.run_id, message)

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


def write_dag_file(path: str, records: list[StepRecord], graph: nx.DiGraph) -> None:
    """AutoTrail's JSON backup of a trail, keyed by step name (written atomically)."""
    data = {
        record.name: {
            "State": record.state.value,
            "Return value": str(record.shown_return_value),
            "Prompt messages": record.prompt_messages,
            "Output messages": record.output_messages,
            "Input messages": record.input_messages,
            "parents": [parent.name for parent in graph.predecessors(record.step)],
        }
        for record in records
    }
    temporary = f"{path}.tmp"
    with open(temporary, "w") as out:
        json.dump(data, out, default=str)
    os.replace(temporary, path)


def records_in(manager: TrailManager, steps: Iterable[Step]) -> list[StepRecord]:
    return sorted((manager.record_of(step) for step in steps), key=lambda r: r.n)
