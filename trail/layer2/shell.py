"""ShellCommand: run a command as a step, streaming its output to the operator as it comes.

The command runs in a session (process group) of its own, adopted by the step's run: when
the step is interrupted or times out, the manager stops that whole group, SIGTERM then
SIGKILL, even if the step's own process is gone. Lines are read the moment they are
written (a selector on both pipes, no polling delay), and every stderr line is checked
against ``is_error_fatal``, not only the last read.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trail.errors import StepInterruptedError
from trail.layer1.executors.base import signal_groups
from trail.layer2.helpers import apply_object_attributes_to_template

MAX_KEPT_LINES = 10_000  # per stream, in the return value; the operator saw every line


class ShellCommandFailedError(RuntimeError):
    """The command failed: an exit code that is not ignorable, or a fatal stderr line."""

    def __init__(self, command: str, exit_code: int | None, last_error: str | None,
                 reason: str = "") -> None:
        self.command = command
        self.exit_code = exit_code
        self.last_error = last_error
        self.reason = reason
        detail = reason or f"Failed with exit code: {exit_code}"
        super().__init__(f"[Command: {command}] -- {detail}, STDERR (Last line): {last_error}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.command, self.exit_code, self.last_error, self.reason))


def _blank(line: str) -> bool:
    return not line


def _never(line: str) -> bool:
    return False


def _zero(exit_code: int) -> bool:
    return exit_code == 0


Command = str | Sequence[str]


class ShellCommand:
    """An action function that runs a command and reports its output line by line.

    ``command_function`` is a command string (a template filled from the context), an argv
    list, or a function ``(trail_env, context)`` returning either, or None for "nothing to
    run". A string is split with shlex and run without a shell unless ``shell=True``.
    The predicates are AutoTrail's: ``is_error_ignorable`` and ``is_output_ignorable`` hide
    lines, ``is_error_fatal`` fails the step on a stderr line, ``is_exit_code_ignorable``
    says which exit codes are success (default: 0 only). ``delay`` is accepted for
    AutoTrail runbooks and unused: output is read as it is written.

    Returns ``{"command", "exit_code", "stdout", "stderr", "message"}`` (the captured lines).
    ``timeout`` stops the command (its whole process group) after that many seconds and
    fails the step; ``kill_grace`` is the time between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        name: str,
        command_function: Command | Callable[[Any, Any], Command | None],
        delay: float | None = None,
        is_error_ignorable: Callable[[str], bool] = _blank,
        is_error_fatal: Callable[[str], bool] = _never,
        is_exit_code_ignorable: Callable[[int], bool] = _zero,
        is_output_ignorable: Callable[[str], bool] = _blank,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        kill_grace: float = 2.0,
        shell: bool = False,
    ) -> None:
        self.name = self.__name__ = name
        self.command_function = command_function
        self.is_error_ignorable = is_error_ignorable
        self.is_error_fatal = is_error_fatal
        self.is_exit_code_ignorable = is_exit_code_ignorable
        self.is_output_ignorable = is_output_ignorable
        self.cwd = cwd
        self.env = env
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.shell = shell

    def __str__(self) -> str:
        return self.name

    def command(self, trail_env: Any, context: Any) -> Command | None:
        spec = self.command_function
        if callable(spec):
            return spec(trail_env, context)
        if isinstance(spec, str):
            return apply_object_attributes_to_template(spec, context)
        return list(spec)

    def argv(self, command: Command) -> list[str]:
        if self.shell:
            text = command if isinstance(command, str) else shlex.join(command)
            return ["/bin/sh", "-c", text]
        return shlex.split(command) if isinstance(command, str) else list(command)

    def __call__(self, trail_env: Any, context: Any) -> dict[str, Any] | str:
        command = self.command(trail_env, context)
        if command is None:
            return "No command to run."
        text = command if isinstance(command, str) else shlex.join(command)
        trail_env.output(f"[Command: {text}] -- Starting.")
        environment = None if self.env is None else {**os.environ, **self.env}
        try:
            process = subprocess.Popen(
                self.argv(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=self.cwd, env=environment, start_new_session=True,
            )
        except OSError as exc:
            raise ShellCommandFailedError(text, None, None, f"Could not start: {exc}") from exc
        trail_env.adopt_process_group(process.pid)
        captured: dict[str, list[str]] = {"STDOUT": [], "STDERR": []}
        fatal: str | None = None
        timed_out = False
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with selectors.DefaultSelector() as selector:
            assert process.stdout is not None and process.stderr is not None
            partial = {}
            for label, stream in (("STDOUT", process.stdout), ("STDERR", process.stderr)):
                os.set_blocking(stream.fileno(), False)
                selector.register(stream, selectors.EVENT_READ, label)
                partial[label] = b""
            while selector.get_map():
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    timed_out = True
                    self._stop(process)
                    deadline = None
                    continue
                for key, _ in selector.select(wait):
                    label = key.data
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        selector.unregister(key.fileobj)
                        lines, partial[label] = [partial[label]] if partial[label] else [], b""
                    else:
                        *lines, partial[label] = (partial[label] + chunk).split(b"\n")
                    for raw in lines:
                        line = raw.decode(errors="replace").rstrip("\r")
                        fatal = self._line(trail_env, label, line, captured) or fatal
        exit_code = process.wait()
        if trail_env.interrupted:
            raise StepInterruptedError(f"[Command: {text}] -- interrupted")
        last_error = fatal or (captured["STDERR"][-1] if captured["STDERR"] else None)
        if timed_out:
            error = ShellCommandFailedError(
                text, exit_code, last_error, f"Timed out after {self.timeout:g} s")
            trail_env.output(str(error))
            raise error
        if not self.is_exit_code_ignorable(exit_code) or fatal is not None:
            error = ShellCommandFailedError(text, exit_code, last_error)
            trail_env.output(str(error))
            raise error
        message = f"[Command: {text}] -- Succeeded with exit code: {exit_code}."
        trail_env.output(message)
        return {"command": text, "exit_code": exit_code, "stdout": captured["STDOUT"],
                "stderr": captured["STDERR"], "message": message}

    def _line(self, trail_env: Any, label: str, line: str,
              captured: dict[str, list[str]]) -> str | None:
        """Report one line; return it if it is a fatal error."""
        ignorable = self.is_output_ignorable if label == "STDOUT" else self.is_error_ignorable
        if ignorable(line):
            return None
        kept = captured[label]
        kept.append(line)
        if len(kept) > MAX_KEPT_LINES:
            del kept[0]
        trail_env.output(f"[{label}] -- {line}")
        if label == "STDERR" and self.is_error_fatal(line):
            return line
        return None

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the command's group, then after the grace period SIGKILL what is left
        of it (a grandchild may ignore SIGTERM and hold the pipes open)."""
        signal_groups([process.pid], signal.SIGTERM)
        try:
            process.wait(self.kill_grace)
        except subprocess.TimeoutExpired:
            pass
        signal_groups([process.pid], signal.SIGKILL)
