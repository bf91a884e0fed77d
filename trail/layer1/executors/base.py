"""What the manager needs from an executor, and the environment a step talks through.

An executor starts step runs and reports back through ``deliver`` (a callback the manager
gives it in ``bind``), always on the manager's thread: the manager polls the file
descriptors the executor names and calls ``collect`` when one is ready. So an executor
never changes step state itself; it only turns what happened into Messages.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from trail.errors import InputTimeoutError, StepInterruptedError
from trail.layer1 import values


class Kind:
    """What a Message from a step run says."""

    OUTPUT = "output"  # payload: the message
    PROMPT = "prompt"  # payload: the prompt; the step now waits for a reply
    RESULT = "result"  # payload: Outcome
    EXIT = "exit"  # payload: how the run's process ended (str); the run is gone
    GROUP = "group"  # payload: a process group id the run started; stopped with the run
    WHERE = "where"  # payload: where the run runs (text); journaled, not shown as output
    STOP = "stop"  # payload: StopReport, how a stopped run's work ended where it ran


@dataclass(frozen=True)
class StopReport:
    """What a stopped step says of its work: on ``where`` (a host; None: this machine),
    whether the stop is ``confirmed`` (the work is known to have ended there), in words."""

    where: str | None
    confirmed: bool
    detail: str


@dataclass(frozen=True)
class Outcome:
    """How an action function ended: its return value, or the exception it raised."""

    ok: bool
    value: Any
    traceback: str = ""
    # The context's parts the step changed in its own copy (process executor), pickled.
    context: dict[str, bytes] | None = None


@dataclass(frozen=True)
class Message:
    run_id: int
    kind: str
    payload: Any


log = logging.getLogger(__name__)

Deliver = Callable[[Message], None]
CallLater = Callable[[float, Callable[[], None]], None]


def signal_groups(pgids: Iterable[int], signum: int) -> None:
    """Send ``signum`` to each process group; one already gone is no error."""
    for pgid in pgids:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass
        except PermissionError as exc:  # the id now belongs to someone else's process
            log.warning("cannot signal process group %s: %s", pgid, exc)


class StepChannel(ABC):
    """A step's end of the line to the manager."""

    @abstractmethod
    def send(self, kind: str, payload: Any) -> None:
        """Send an output or prompt message to the manager (never blocks for long)."""

    @abstractmethod
    def receive(self, timeout: float | None) -> Any:
        """Wait for the next reply sent to the step; TimeoutError after ``timeout`` seconds,
        StepInterruptedError if the step is interrupted meanwhile."""

    @property
    def interrupted(self) -> bool:
        return self._stop_asked

    _stop_asked = False
    _hooks: list[Callable[[], None]] | None = None

    def on_interrupt(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` when the run is interrupted; returns what takes it back.

        A run in a process of its own is interrupted by SIGTERM: while a hook is set, that
        signal calls the hooks instead of ending the process, and the step must end itself
        (the manager's SIGKILL after the grace period is the backstop). Set from the
        process's main thread only; elsewhere the hook is never called and SIGTERM ends
        the process as before."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        if self._hooks is None:
            self._hooks = []
        if not self._hooks:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        self._hooks.append(hook)
        if self._stop_asked:
            hook()

        def take_back() -> None:
            hooks = self._hooks or []
            if hook in hooks:
                hooks.remove(hook)
            if not hooks:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return take_back

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._stop_asked = True
        for hook in list(self._hooks or []):
            hook()


class TrailEnvironment:
    """What an action function gets as ``trail_env``: its way to talk to the operator."""

    # For a gate step (``Step(gate=True)``): the names of the steps above it that failed
    # (back to the gates above), set when it starts.
    failed_above: tuple[str, ...] = ()

    def __init__(self, channel: StepChannel) -> None:
        self._channel = channel

    def output(self, message: Any) -> None:
        """Show ``message`` to the operator (it appears in 'Output messages' at once)."""
        self._channel.send(Kind.OUTPUT, values.clipped(values.shown(message)))

    def input(self, prompt: Any, timeout: float | None = None) -> Any:
        """Ask the operator ``prompt`` and wait for the reply (``send_message_to_steps``).

        Raises InputTimeoutError (also a ``queue.Empty``, as in AutoTrail) when no reply
        comes within ``timeout`` seconds, StepInterruptedError if the step is interrupted.
        """
        self._channel.send(Kind.PROMPT, values.shown(prompt))
        try:
            return self._channel.receive(timeout)
        except TimeoutError:
            raise InputTimeoutError(prompt, timeout or 0.0) from None

    def adopt_process_group(self, pgid: int, after: float | None = None) -> None:
        """Have the manager stop process group ``pgid`` along with this run.

        For a command started in a session of its own (so it can be stopped without
        stopping the step): interrupting or timing out the step then sends the group
        SIGTERM, and SIGKILL after the grace period, even if the step's own process is
        already gone. With ``after``, the signals wait that many seconds, and come only if
        the run has not ended by then: for a command the step asks to stop itself first
        (``on_interrupt``), more gently than a signal can.
        """
        self._channel.send(Kind.GROUP, int(pgid) if after is None else (int(pgid), after))

    @property
    def interrupted(self) -> bool:
        """True once the operator interrupted this run (check it in long thread-run loops)."""
        return self._channel.interrupted

    def on_interrupt(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Have ``hook`` called (at once, from another thread or a signal handler: keep it
        short, e.g. a write to a pipe) when the operator interrupts or times out this run,
        so that a step waiting on work elsewhere can ask that work to stop and say how it
        went (``report_stop``); returns a function that takes the hook back. A step that
        sets one must end soon after it is called."""
        return self._channel.on_interrupt(hook)

    def report_stop(self, where: str | None, confirmed: bool, detail: str) -> None:
        """Say how stopping this run's work went on ``where`` (a host; None: here):
        ``confirmed`` if it is known to have ended. Shown as output, journaled, and
        published with the run's ``stopped`` event, where ``trail stop`` counts them."""
        self._channel.send(Kind.STOP, StopReport(where, bool(confirmed), str(detail)))

    def check_interrupted(self) -> None:
        """Raise StepInterruptedError if the operator interrupted this run."""
        if self._channel.interrupted:
            raise StepInterruptedError("the step was interrupted")


class Executor(ABC):
    """Runs step actions somewhere and reports what happens as Messages."""

    name: str
    # The run's context. An executor whose steps run in a copy of it (a forked process)
    # sends back the parts a step changed (``Outcome.context``; see layer1/context.py).
    context: Any = None

    def bind(self, deliver: Deliver, call_later: CallLater) -> None:
        """Called once by the manager before any run starts."""
        self._deliver = deliver
        self._call_later = call_later

    def watch(self) -> list[int]:
        """File descriptors the manager polls for this executor as a whole."""
        return []

    @abstractmethod
    def prepare(self, run_id: int) -> TrailEnvironment:
        """Set up a run's channel; the pre-processor gets the environment before ``start``."""

    def where(self, run_id: int) -> str | None:
        """Where a prepared run will run, to journal before it starts (with its Running);
        None when there is nothing a take-up would need to find it by."""
        return None

    @abstractmethod
    def start(
        self, run_id: int, function: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> int | None:
        """Start ``function(*args, **kwargs)``; return a descriptor to poll for it, if any."""

    @abstractmethod
    def discard(self, run_id: int) -> None:
        """Forget a prepared run that will not start (its pre-processor failed)."""

    @abstractmethod
    def collect(self, fd: int) -> bool:
        """Deliver what is ready on ``fd``; return True when ``fd`` is closed for good."""

    @abstractmethod
    def reply(self, run_id: int, message: Any) -> None:
        """Hand an operator's reply to a run (its next ``input`` returns it)."""

    @abstractmethod
    def interrupt(self, run_id: int) -> None:
        """Ask a run to stop now (SIGTERM, or a flag for a thread)."""

    @abstractmethod
    def kill(self, run_id: int) -> None:
        """Make sure nothing of the run is left (SIGKILL); a no-op if it is gone."""

    @abstractmethod
    def close(self, grace: float) -> None:
        """Stop every run: interrupt, wait up to ``grace`` seconds, then kill."""
