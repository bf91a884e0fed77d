"""The thread executor: runs in worker threads of the server's process, for cheap steps.

With ``step_output`` (``trail run`` gives its log file), what steps print goes to that
file instead of the terminal the live view draws on, as under the process executor.

Workers are kept and reused (starting a thread costs more than a cheap step). Messages go
into one queue, and a byte on a wake-up pipe tells the manager's poll there is something
to collect. A thread cannot be killed: ``interrupt`` marks the run interrupted (the manager
stops waiting for it at once), ``trail_env.input`` raises StepInterruptedError, a long
step can check ``trail_env.interrupted`` or set a hook (``trail_env.on_interrupt``);
whatever it returns later is ignored, what it says until it ends is kept.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from trail.errors import StepInterruptedError
from trail.layer1.executors.base import (
    Executor,
    Kind,
    Message,
    Outcome,
    StepChannel,
    TrailEnvironment,
)

log = logging.getLogger(__name__)

_INTERRUPTED = object()
COLLECT_AT_ONCE = 1000  # messages delivered per wake-up of the manager


class QueueChannel(StepChannel):
    def __init__(self, run_id: int, post: Callable[..., None]) -> None:
        self._run_id = run_id
        self._post = post
        self.replies: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.stopped = False  # set by the manager's thread, read by the step's
        self._thread_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def send(self, kind: str, payload: Any) -> None:
        self._post(Message(self._run_id, kind, payload))

    def receive(self, timeout: float | None) -> Any:
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if reply is _INTERRUPTED:
            raise StepInterruptedError("the step was interrupted while it waited for input")
        return reply

    @property
    def interrupted(self) -> bool:
        return self.stopped

    def on_interrupt(self, hook: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._thread_hooks.append(hook)
            stopped = self.stopped
        if stopped:
            hook()

        def take_back() -> None:
            with self._lock:
                if hook in self._thread_hooks:
                    self._thread_hooks.remove(hook)
        return take_back

    def stop(self) -> None:
        """Mark the run interrupted and call its hooks (on the manager's thread)."""
        with self._lock:
            self.stopped = True
            hooks = list(self._thread_hooks)
        self.replies.put(_INTERRUPTED)
        for hook in hooks:
            try:
                hook()
            except Exception:  # a step's hook must not break the manager's loop
                log.exception("an interrupt hook of run %s raised", self._run_id)


_in_step = threading.local()  # .active: this thread runs a step now


class _StepStream:
    """Stands in for sys.stdout or sys.stderr: what a step's thread prints goes to the
    step output file, what any other thread prints (the live view) where it always went,
    and every other question (isatty, fileno, encoding) is answered by the original.
    (Only Python-level writes: a child process writing to fd 1 is not redirected.)"""

    def __init__(self, original: Any, target: Any) -> None:
        self.original = original
        self.target = target

    def _stream(self) -> Any:
        in_step = getattr(_in_step, "active", False)
        return self.target if in_step and not self.target.closed else self.original

    def write(self, text: str) -> int:
        return int(self._stream().write(text))

    def flush(self) -> None:
        self._stream().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class _Job:
    """One step's run on a worker: what to call, and its channel."""

    __slots__ = ("run_id", "channel", "function", "args", "kwargs")

    def __init__(self, run_id: int, channel: QueueChannel) -> None:
        self.run_id = run_id
        self.channel = channel
        self.function: Callable[..., Any] | None = None
        self.args: Any = ()
        self.kwargs: dict[str, Any] = {}


class ThreadExecutor(Executor):
    """Runs each step in a pooled worker thread."""

    name = "thread"

    def __init__(self, step_output: str | None = None) -> None:
        self.step_output = step_output
        self._output: Any = None  # the open step output file, once a step runs
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._jobs: dict[int, _Job] = {}
        self._work: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = 0
        self._idle_lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def watch(self) -> list[int]:
        return [self._wake_r]

    def _post(self, *messages: Message) -> None:
        for message in messages:
            self._inbox.put(message)
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full, so the manager is bound to wake anyway

    def prepare(self, run_id: int) -> TrailEnvironment:
        job = _Job(run_id, QueueChannel(run_id, self._post))
        self._jobs[run_id] = job
        return TrailEnvironment(job.channel)

    def discard(self, run_id: int) -> None:
        del self._jobs[run_id]

    def start(
        self, run_id: int, function: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> None:
        job = self._jobs[run_id]
        job.function, job.args, job.kwargs = function, args, kwargs
        if self.step_output is not None and self._output is None:
            self._redirect(self.step_output)
        with self._idle_lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:
            worker = threading.Thread(target=self._worker, name="trail-step", daemon=True)
            self._workers.append(worker)
            worker.start()
        self._work.put(job)
        return None

    def _redirect(self, path: str) -> None:
        self._output = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        os.chmod(path, 0o600)
        sys.stdout = _StepStream(sys.stdout, self._output)
        sys.stderr = _StepStream(sys.stderr, self._output)

    def _restore(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _StepStream) and stream.target is self._output:
                setattr(sys, name, stream.original)
        if self._output is not None:
            self._output.close()
            self._output = None

    def _worker(self) -> None:
        _in_step.active = True
        while True:
            job = self._work.get()
            if job is None:
                return
            assert job.function is not None
            try:
                outcome = Outcome(True, job.function(*job.args, **job.kwargs))
            except BaseException as exc:  # the step's failure is reported, whatever it was
                outcome = Outcome(False, exc, traceback.format_exc())
            # Idle before reporting: the manager may start the next step as soon as it
            # reads this result, and should find this worker free rather than spawn one.
            with self._idle_lock:
                self._idle += 1
            self._post(Message(job.run_id, Kind.RESULT, outcome),
                       Message(job.run_id, Kind.EXIT, "finished"))

    def collect(self, fd: int) -> bool:
        """Deliver what the steps reported, at most COLLECT_AT_ONCE messages: the rest wake
        the manager again at once (one wake-up must not hold a hundred thousand)."""
        try:
            while os.read(fd, 1 << 16):
                pass
        except BlockingIOError:
            pass
        for _ in range(COLLECT_AT_ONCE):
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return False
            if message.kind == Kind.EXIT:
                self._jobs.pop(message.run_id, None)
            self._deliver(message)
        if not self._inbox.empty():
            self._post()  # more to collect: wake the manager's poll
        return False

    def reply(self, run_id: int, message: Any) -> None:
        job = self._jobs.get(run_id)
        if job is not None:
            job.channel.replies.put(message)

    def interrupt(self, run_id: int) -> None:
        job = self._jobs.get(run_id)
        if job is not None:
            job.channel.stop()

    def kill(self, run_id: int) -> None:
        """A thread cannot be killed; an interrupted run is already abandoned."""

    def close(self, grace: float) -> None:
        for run_id in list(self._jobs):
            self.interrupt(run_id)
        for _ in self._workers:
            self._work.put(None)
        for worker in self._workers:
            worker.join(timeout=grace / max(1, len(self._workers)))
        self._restore()
        os.close(self._wake_r)
        os.close(self._wake_w)
