"""Every error trail raises on purpose.

    TrailError
    ├── DefinitionError (ValueError)       a trail definition trail cannot run
    │   └── CycleError                     ... because it has a cycle; names the steps on it
    ├── TransitionError                    a step cannot take an action in its state
    ├── ProtocolError (ValueError)         a request or reply that breaks the wire format
    ├── TrailConnectionError (ConnectionError)  no server answered at a socket
    ├── TrailClientError                   the server refused a call; carries its message
    ├── SocketInUseError                   a live server already serves at a socket file
    ├── ServerShuttingDownError            the server is shutting down, serves no more calls
    ├── JournalError                       the journal cannot be used
    │   └── JournalMismatchError           its unfinished run no longer matches the trail
    ├── DagFileMismatchError (ValueError)  an AutoTrail DAG file does not match the trail
    │                                      (alias: MatchTrailsException, AutoTrail's name)
    ├── RunbookError                       a runbook file that cannot be loaded
    │   └── YamlRunbookError               ... a YAML one: every problem, file:line:column
    └── StepError                          raised into or on behalf of a step
        ├── StepInterruptedError           the operator interrupted the step
        ├── StepTimeoutError (TimeoutError)    the step ran past its timeout
        ├── StepProcessError               the step's process died without a result
        ├── RemoteStepError                a step's exception that could not be pickled
        ├── InputTimeoutError (TimeoutError, queue.Empty)
        │                                  nobody answered trail_env.input in time
        ├── InstructionNotCompletedError (RuntimeError)
        │                                  the operator said an Instruction was not done
        ├── RolloutStoppedError (RuntimeError)
        │                                  a rolling update's gate stopped it: too many
        │                                  hosts of a batch failed (or the operator said no)
        └── ShellCommandFailedError (RuntimeError)
            │                              a command failed (exit code, fatal stderr line)
            └── HostUnreachableError       ssh could not reach the host, or lost it

Errors are built from their facts; the message is made in ``__init__`` so every raise
site says the same thing the same way.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable
from typing import Any


class TrailError(Exception):
    """Root of every error trail raises on purpose."""


class DefinitionError(TrailError, ValueError):
    """A trail definition that trail cannot run: empty, a non-Step in it, a bad pair."""


class CycleError(DefinitionError):
    """The trail definition has a cycle. ``steps`` lists the steps on it, in order."""

    def __init__(self, steps: Iterable[str]) -> None:
        self.steps = list(steps)
        path = " -> ".join([*self.steps, self.steps[0]]) if self.steps else "?"
        super().__init__(f"the trail has a cycle: {path}")


class TransitionError(TrailError):
    """A step in ``state`` cannot take ``action``."""

    def __init__(self, state: str, action: str) -> None:
        self.state = state
        self.action = action
        super().__init__(f"a step in state {state!r} cannot {action}")


class ProtocolError(TrailError, ValueError):
    """A request or reply that breaks trail's wire format."""


class TrailConnectionError(TrailError, ConnectionError):
    """No trail server answered at a socket file."""

    def __init__(self, socket_file: str, reason: str) -> None:
        self.socket_file = socket_file
        super().__init__(f"no trail server at {socket_file}: {reason}")


class TrailClientError(TrailError):
    """The server refused a call. ``type`` is the server-side error's name."""

    def __init__(self, message: str, type: str = "TrailError") -> None:  # noqa: A002
        self.type = type
        self.message = message
        super().__init__(message)


class SocketInUseError(TrailError):
    """A live trail server already serves at this socket file."""

    def __init__(self, socket_file: str, held_by: str = "") -> None:
        self.socket_file = socket_file
        self.held_by = held_by  # who holds the socket, when it could be found out
        super().__init__(f"a trail server is already serving at {socket_file}"
                         + (f" (held by pid {held_by})" if held_by else ""))


class ServerShuttingDownError(TrailError):
    """The server is shutting down and serves no more calls."""


class StepError(TrailError):
    """Raised into or on behalf of a step."""


class StepInterruptedError(StepError):
    """The operator interrupted the step (raised into a thread-executor step)."""


class StepTimeoutError(StepError, TimeoutError):
    """The step ran longer than its ``timeout`` and was stopped."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(f"step {name!r} timed out after {timeout:g} s and was stopped")


class StepProcessError(StepError):
    """The step's process ended without reporting a result (killed, crashed, os._exit)."""


class RemoteStepError(StepError):
    """A step raised an exception that could not cross the process boundary as itself."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        super().__init__(f"{type_name}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback))


class InputTimeoutError(StepError, TimeoutError, queue.Empty):
    """Nobody answered ``trail_env.input(prompt, timeout)`` in time.

    It is also a ``queue.Empty``, which is what AutoTrail raised here.
    """

    def __init__(self, prompt: object, timeout: float) -> None:
        self.prompt = prompt
        self.timeout = timeout
        super().__init__(f"no reply to {prompt!r} within {timeout:g} s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.prompt, self.timeout))


class JournalError(TrailError):
    """The journal cannot be used: damaged, unreadable, or not a journal."""


class JournalMismatchError(JournalError):
    """The trail changed since the journal's unfinished run of it was written."""

    def __init__(self, run_id: int, differences: list[str]) -> None:
        self.run_id = run_id
        self.differences = differences  # every one; the message names the first few
        first = "; ".join(differences[:3])
        more = f"; and {len(differences) - 3} more" if len(differences) > 3 else ""
        super().__init__(
            f"the journal's unfinished run {run_id} of this trail does not match its "
            f"definition now ({len(differences)} difference(s): {first}{more}). To start "
            f"a new run: `trail run RUNBOOK --fresh` or TrailServer(..., resume=False); to "
            f"take up run {run_id}, put the trail back as it was"
        )


class DagFileMismatchError(TrailError, ValueError):
    """An AutoTrail DAG file given to ``restore_trail`` does not match the trail: a step is
    missing from it, or a step's parents differ."""


MatchTrailsException = DagFileMismatchError  # AutoTrail's name for it


class RunbookError(TrailError):
    """A runbook file that cannot be loaded, with where and why."""


class YamlRunbookError(RunbookError):
    """A YAML runbook with problems; ``problems`` lists them all, each ``file:line:column:
    what``, one per line of the message."""

    def __init__(self, problems: Iterable[Any]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the runbook:\n"
        super().__init__(head + "\n".join(str(problem) for problem in self.problems))


class InstructionNotCompletedError(StepError, RuntimeError):
    """The operator answered that a manual instruction was not done."""


class RolloutStoppedError(StepError, RuntimeError):
    """A rolling update stopped at a gate: more hosts of a batch failed than it allows, or
    the operator answered no. ``rollout`` is its name, ``reason`` what the gate saw."""

    def __init__(self, rollout: str, reason: str) -> None:
        self.rollout = rollout
        self.reason = reason
        super().__init__(f"the rollout {rollout!r} stopped: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.rollout, self.reason))


def command_label(command: str, host: str | None) -> str:
    """How output and errors name a command: ``[Command: ...]``, and where it ran."""
    return f"[Command: {command}]" if host is None else f"[Command: {command}] [Host: {host}]"


class ShellCommandFailedError(StepError, RuntimeError):
    """The command failed: an exit code that is not ignorable, or a fatal stderr line.

    ``ShellCommandFailedError(message)`` alone, as AutoTrail raises it, is that message
    (``command`` holds it; the other facts are None).
    """

    def __init__(self, command: str, exit_code: int | None = None,
                 last_error: str | None = None, reason: str = "",
                 host: str | None = None) -> None:
        self.command = command
        self.exit_code = exit_code
        self.last_error = last_error
        self.reason = reason
        self.host = host
        if exit_code is None and last_error is None and not reason and host is None:
            super().__init__(command)
            return
        detail = reason or f"Failed with exit code: {exit_code}"
        super().__init__(f"{command_label(command, host)} -- {detail}, "
                         f"STDERR (Last line): {last_error}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.command, self.exit_code, self.last_error, self.reason,
                             self.host))


class HostUnreachableError(ShellCommandFailedError):
    """ssh could not reach the host, or lost it while the command ran: the command's own
    result is unknown. ``problem`` names what went wrong ("connection refused",
    "authentication failed", "host key refused", "name not resolved", "connection lost",
    ...); ``transient`` says whether trying again later may help (for ``retry_on``)."""

    def __init__(self, command: str, host: str, problem: str, detail: str | None,
                 transient: bool, during: bool = False) -> None:
        self.problem = problem
        self.transient = transient
        self.during = during
        what = ("Lost the connection to the host while the command ran" if during
                else "Could not reach the host")
        super().__init__(command, None, detail, f"{what} ({problem})", host)

    def __str__(self) -> str:
        return f"{command_label(self.command, self.host)} -- {self.reason}: {self.last_error}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.command, self.host, self.problem, self.last_error,
                             self.transient, self.during))
