"""The process executor: every run in a forked child process, in a process group of its own.

Why fork and not spawn: a runbook's action functions may be closures, lambdas or functions
typed into a REPL, which cannot be pickled; a forked child already has them. The child
calls ``setsid`` so the run and everything it starts form one process group, and
``interrupt``/``kill`` signal that whole group: no grandchild outlives an interrupted step.

Each run talks to the manager over two pipes: ``out`` (child -> manager: length-prefixed
pickled frames for output, prompts and the outcome) and ``in`` (manager -> child:
length-prefixed JSON replies). The manager polls ``out``; end-of-file on it means the child
is gone, and the child is then reaped.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from trail.errors import RemoteStepError
from trail.layer1 import context as durable
from trail.layer1 import forks, values
from trail.layer1.executors.base import (
    Executor,
    Kind,
    Message,
    Outcome,
    StepChannel,
    TrailEnvironment,
    signal_groups,
)

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!I")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_available(fd: int, buffer: bytearray) -> bool:
    """Append what a non-blocking pipe has to ``buffer``; True once it is at its end."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        buffer += chunk


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def unframe(buffer: bytearray) -> list[bytes]:
    """Take every whole frame off the front of ``buffer``."""
    frames = []
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + size:
            break
        frames.append(bytes(buffer[_HEADER.size : _HEADER.size + size]))
        del buffer[: _HEADER.size + size]
    return frames


class PipeChannel(StepChannel):
    """The child's end: writes frames to ``out_fd``, reads replies from ``in_fd``."""

    def __init__(self, out_fd: int, in_fd: int) -> None:
        self._out = out_fd
        self._in = in_fd
        self._buffer = bytearray()
        self._replies: list[Any] = []

    def send(self, kind: str, payload: Any) -> None:
        _write_all(self._out, frame(pickle.dumps((kind, payload))))

    def receive(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._replies:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._in], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(self._in, 65536)
            if not chunk:
                raise EOFError("the manager closed the step's input")
            self._buffer += chunk
            self._replies += [json.loads(f) for f in unframe(self._buffer)]
        return self._replies.pop(0)


def outcome_frame(outcome: Outcome) -> bytes:
    """The outcome as a frame the manager can load, whatever the step returned or raised."""
    try:
        data = pickle.dumps((Kind.RESULT, outcome))
        pickle.loads(data)  # an exception with an unusual __init__ pickles but won't load
    except Exception as exc:
        if outcome.ok:
            # Shown here, as the manager would show it: the same as if it had crossed.
            value: Any = values.shown(outcome.value)
            log.warning("a step's return value cannot be pickled (%s); sending it as shown",
                        exc)
        else:
            error = outcome.value
            value = RemoteStepError(type(error).__name__, str(error), outcome.traceback)
        data = pickle.dumps((Kind.RESULT, Outcome(outcome.ok, value, outcome.traceback,
                                                  outcome.context)))
    return frame(data)


@dataclass
class _Run:
    run_id: int
    out_r: int
    out_w: int
    in_r: int
    in_w: int
    pid: int | None = None
    buffer: bytearray = field(default_factory=bytearray)
    exited: bool = False
    interrupted: bool = False

    def close(self, *names: str) -> None:
        """Close this end of the run's pipes, each once: a descriptor number closed twice
        may by then belong to someone else (a ZeroMQ socket of this very server)."""
        for name in names:
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)


class ProcessExecutor(Executor):
    """Runs each step in a forked child process of its own process group."""

    name = "process"

    def __init__(self, step_output: str | None = None) -> None:
        self.step_output = step_output
        self._runs: dict[int, _Run] = {}
        self._by_fd: dict[int, _Run] = {}
        # Interrupted runs already reaped whose group may still hold a straggler, until
        # their kill() comes: run id -> process group id.
        self._to_kill: dict[int, int] = {}

    def prepare(self, run_id: int) -> TrailEnvironment:
        out_r, out_w = os.pipe()
        in_r, in_w = os.pipe()
        run = _Run(run_id, out_r, out_w, in_r, in_w)
        self._runs[run_id] = run
        return TrailEnvironment(PipeChannel(out_w, in_r))

    def discard(self, run_id: int) -> None:
        self._runs.pop(run_id).close("out_r", "out_w", "in_r", "in_w")

    def start(
        self, run_id: int, function: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> int:
        run = self._runs[run_id]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(run, function, args, kwargs, self.step_output, self.context)
        run.pid = pid
        forks.guard_group(pid)  # killed by the warden if the server dies first
        run.close("out_w", "in_r")
        os.set_blocking(run.out_r, False)
        os.set_blocking(run.in_w, False)
        self._by_fd[run.out_r] = run
        return run.out_r

    def collect(self, fd: int) -> bool:
        run = self._by_fd[fd]
        eof = read_available(fd, run.buffer)
        for data in unframe(run.buffer):
            kind, payload = pickle.loads(data)
            self._deliver(Message(run.run_id, kind, payload))
        if eof:
            del self._by_fd[fd]
            run.close("out_r")
            self._reap(run)
        return eof

    def _reap(self, run: _Run, delay: float = 0.001) -> None:
        assert run.pid is not None
        pid, status = os.waitpid(run.pid, os.WNOHANG)
        if pid == 0:
            # It closed its channel but still runs; look again later, less often.
            self._call_later(delay, lambda: self._reap(run, min(delay * 2, 1.0)))
            return
        run.exited = True
        run.close("in_w")
        del self._runs[run.run_id]
        if run.interrupted:
            self._to_kill[run.run_id] = run.pid
        else:
            forks.release_group(run.pid)
        self._deliver(Message(run.run_id, Kind.EXIT, describe_exit(status)))

    def reply(self, run_id: int, message: Any) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        try:
            _write_all(run.in_w, frame(json.dumps(message).encode()))
        except BlockingIOError:
            log.error("run %s does not read its input; a reply was dropped", run_id)

    def interrupt(self, run_id: int) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.pid is not None:
            run.interrupted = True
            signal_groups([run.pid], signal.SIGTERM)

    def kill(self, run_id: int) -> None:
        # The group outlives its leader: signal it even after the leader was reaped, so a
        # grandchild that ignored SIGTERM still gets the SIGKILL.
        run = self._runs.get(run_id)
        pid = run.pid if run is not None else self._to_kill.pop(run_id, None)
        if pid is not None:
            signal_groups([pid], signal.SIGKILL)
            if run is None:
                forks.release_group(pid)

    def close(self, grace: float) -> None:
        runs = [run for run in self._runs.values() if run.pid is not None and not run.exited]
        for run in runs:
            self.interrupt(run.run_id)
        deadline = time.monotonic() + grace
        for run in runs:
            assert run.pid is not None
            while True:
                pid, _ = os.waitpid(run.pid, os.WNOHANG)
                if pid or time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            signal_groups([run.pid], signal.SIGKILL)
            forks.release_group(run.pid)
            if not pid:
                try:
                    os.waitpid(run.pid, 0)
                except ChildProcessError:
                    pass
        for run in self._runs.values():
            run.close("out_r", "out_w", "in_r", "in_w")
        for pgid in self._to_kill.values():
            signal_groups([pgid], signal.SIGKILL)
            forks.release_group(pgid)
        self._runs.clear()
        self._by_fd.clear()
        self._to_kill.clear()


_PR_SET_PDEATHSIG = 1


def _find_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not Linux: a step outlives a crashed parent
        return None


# Found once, here, before any fork: in each forked child it cost 0.2 ms.
_prctl = _find_prctl()


def set_death_signal() -> None:
    """This (forked) process gets SIGKILL when its parent dies, even by SIGKILL (Linux)."""
    if _prctl is None:
        return
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(70)


def _die_with_parent() -> None:
    """If the server dies (even by SIGKILL), so does this step: a crashed run's steps come
    back Interrupted for the operator to decide on, none goes on unwatched meanwhile."""
    set_death_signal()


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def redirect_output(fd: int) -> None:
    """Send this (forked) process's stdout and stderr to ``fd``: the descriptors and, whatever
    sys.stdout was in the parent (a REPL's, a test's capture), Python's streams too."""
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115


def become_step_process(output_fd: int = -1) -> None:
    """A forked child becomes a step's process: a session (process group) of its own, dead
    with its parent, default signal handlers, its output to ``output_fd`` if one is given."""
    os.setsid()
    _die_with_parent()
    if output_fd >= 0:
        redirect_output(output_fd)
    # Each only if it differs: a Dask agent's children have most of them so already.
    for signum, handler in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.SIG_DFL),
                            (signal.SIGCHLD, signal.SIG_DFL),
                            # As in any Python program: a write to a closed pipe raises
                            # BrokenPipeError.
                            (signal.SIGPIPE, signal.SIG_IGN)):
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


def call_step(function: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Outcome:
    """Run the action function; its failure is reported, whatever it was."""
    try:
        return Outcome(True, function(*args, **kwargs))
    except BaseException as exc:
        return Outcome(False, exc, traceback.format_exc())


def end_child(body: Callable[[], None]) -> NoReturn:
    """Run ``body`` in a forked child and leave: ``os._exit`` always (0, or 70 with the
    traceback on stderr), never back into the parent's code."""
    code = 0
    try:
        body()
    except BaseException:  # noqa: B036 - the child must reach os._exit, always
        code = 70
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _child(run: _Run, function: Callable[..., Any], args: Any, kwargs: dict[str, Any],
           step_output: str | None, context: Any = None) -> NoReturn:
    def body() -> None:
        output = -1
        if step_output is not None:
            output = os.open(step_output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        become_step_process(output)
        os.close(run.out_r)
        os.close(run.in_w)
        forks.let_go_of_pipes(keep=(run.out_w, run.in_r))
        durable.after_fork(context)
        before = durable.snapshot(context) if durable.tracked(context) else None
        outcome = call_step(function, args, kwargs)
        if before is not None:  # what the step changed in its copy goes back with it
            outcome = replace(outcome, context=durable.changed(before, durable.snapshot(context)))
        _write_all(run.out_w, outcome_frame(outcome))

    end_child(body)
