"""ShellCommand: run a command as a step, streaming its output to the operator as it comes.

The command runs in a session (process group) of its own under a small ``sh`` wrapper
(``trail.layer2.steps.wrapper``) whose watcher stops that whole group, SIGTERM then SIGKILL, when
its input closes: when the step is interrupted or times out, and also when the step's
process dies, crashed server included. The wrapper's own group is adopted by the step's
run, so the manager signals it too. The same wrapper runs a command on another host
(``host=``, through ``ssh``) and as another user (``sudo``), where no signal from here
reaches. Lines are read the moment they are written (a selector on both pipes, no polling
delay), and every stderr line is checked against ``is_error_fatal``, not only the last.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trail.errors import (
    HostUnreachableError,
    ShellCommandFailedError,
    StepInterruptedError,
)
from trail.errors import command_label as label
from trail.layer1.executors.base import signal_groups
from trail.layer2.steps.helpers import apply_object_attributes_to_template
from trail.layer2.steps.ssh import SSH_FAILED, Target, diagnose, ssh_options_argv
from trail.layer2.steps.wrapper import (
    Markers,
    inner_script,
    new_tag,
    preamble,
    sudo_wants_password,
    wrapped_argv,
)

MAX_KEPT_LINES = 10_000  # per stream, in the return value; the operator saw every line
MAX_SSH_LINES = 50  # stderr lines kept to tell why ssh or sudo gave up
MAX_KEPT_CHARS = 1 << 20  # per stream, in the return value: the newest lines that fit
MAX_LINE_BYTES = 32 * 1024  # of one output line; the rest of a longer line is counted, not kept
REMOTE_STOP_MARGIN = 5.0  # seconds beyond the grace for a remote command to stop itself
EXIT_POLL = 0.5  # seconds between looks at a wrapped command's process, without a pidfd
LOCAL_SETSID = shutil.which("setsid")  # util-linux: every Linux; not macOS


def _blank(line: str) -> bool:
    return not line


def _never(line: str) -> bool:
    return False


def _zero(exit_code: int) -> bool:
    return exit_code == 0


Command = str | Sequence[str]


class ShellResult(str):
    """What a ShellCommand that succeeded returns: AutoTrail's text, with the facts kept.

    It is the text ``[Command: echo hello] -- Succeeded with exit code: 0.`` wherever a
    string goes (status, the journal, ``==``, ``in``), and it carries ``command``,
    ``exit_code``, ``stdout`` and ``stderr`` (lists of the captured lines) for a
    post-processor or the next step to read; ``result["stdout"]`` reads them too. Status
    and the journal show the text: the lines are in the step's output messages.
    """

    command: str
    exit_code: int
    stdout: list[str]
    stderr: list[str]

    FIELDS = ("command", "exit_code", "stdout", "stderr", "message")

    def __new__(cls, message: str, command: str, exit_code: int, stdout: list[str],
                stderr: list[str]) -> ShellResult:
        result = super().__new__(cls, message)
        result.command = command
        result.exit_code = exit_code
        result.stdout = stdout
        result.stderr = stderr
        return result

    @property
    def message(self) -> str:
        return str(self)

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            if key not in self.FIELDS:
                raise KeyError(key)
            return getattr(self, key)
        return str.__getitem__(self, key)

    def __getnewargs__(self) -> tuple[Any, ...]:  # type: ignore[override]
        return str(self), self.command, self.exit_code, self.stdout, self.stderr


class ShellCommand:
    """An action function that runs a command and reports its output line by line.

    ``command_function`` is a command string (a template filled from the context), an argv
    list, or a function ``(trail_env, context)`` returning either, or None for "nothing to
    run". A string is split with shlex and run without a shell unless ``shell=True``.
    The predicates are AutoTrail's: ``is_error_ignorable`` and ``is_output_ignorable`` hide
    lines, ``is_error_fatal`` fails the step on a stderr line, ``is_exit_code_ignorable``
    says which exit codes are success (default: 0 only). ``delay`` is accepted for
    AutoTrail runbooks and unused: output is read as it is written.

    Returns a ShellResult: AutoTrail's text (``[Command: ...] -- Succeeded with exit code:
    0.``), a ``str``, whose attributes ``exit_code``, ``stdout`` and ``stderr`` (the
    captured lines: the newest MAX_KEPT_LINES of each stream, at most MAX_KEPT_CHARS
    characters) and ``command`` carry the rest.
    ``timeout`` stops the command (its whole process group) after that many seconds and
    fails the step; ``kill_grace`` is the time between SIGTERM and SIGKILL.

    ``host`` runs the command on that host through the system's ``ssh`` (``user``,
    ``port``, ``ssh_options`` as a list of ssh arguments or a mapping of ``-o`` options;
    ``connect_timeout`` and ``alive_interval`` bound how long an unreachable or silent host
    is waited for). There a string command is sh text, run by the remote ``sh``; an argv
    list is quoted exactly. Interrupt and timeout stop the command's process group on the
    host (see ``trail.layer2.steps.wrapper``). A host that cannot be reached, or is lost during the
    command, fails the step with HostUnreachableError, never with the command's exit code.
    On a host (and under sudo) ``cwd`` and ``env`` are set by the wrapper that runs the
    command; ``env`` values travel on its input, never on a command line ``ps`` would show.

    ``sudo=True`` (root) or ``sudo_user="name"`` runs the command through ``sudo -n``, here
    or on the host: sudo never prompts where nobody can see it; if it wants a password,
    the step fails at once saying so. As another user the command is beyond this process's
    signals, so it runs under the same stop wrapper as a remote command, as that user.
    (A password typed into a step prompt would be kept in the journal, so trail does not
    offer one: allow the command NOPASSWD in sudoers instead.)
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
        host: str | None = None,
        user: str | None = None,
        port: int | None = None,
        ssh_options: Sequence[str] | Mapping[str, object] | None = None,
        connect_timeout: float = 10.0,
        alive_interval: float = 15.0,
        sudo: bool = False,
        sudo_user: str | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds: {timeout!r}")
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
        self.target = Target(
            host=host, user=user, port=port, ssh_options=ssh_options_argv(ssh_options),
            sudo_user=sudo_user or ("root" if sudo else None),
            connect_timeout=connect_timeout, alive_interval=alive_interval,
        )

    def __str__(self) -> str:
        return self.name

    @property
    def host(self) -> str | None:
        return self.target.host

    def command(self, trail_env: Any, context: Any) -> Command | None:
        spec = self.command_function
        if callable(spec):
            return spec(trail_env, context)
        if isinstance(spec, str):
            return apply_object_attributes_to_template(spec, context)
        return list(spec)

    @property
    def wrapped(self) -> bool:
        """Run under trail's stop wrapper (``trail.layer2.steps.wrapper``): always where ``setsid``
        is (so a command stops when its step's process dies, even with a crashed server);
        without it, only on a host or as another user, where signals from here cannot
        reach the whole command."""
        return (self.target.host is not None or self.target.sudo_user is not None
                or LOCAL_SETSID is not None)

    @property
    def here(self) -> bool:
        """Runs as this process's user on this machine: cwd and env are given to it as
        to any child, not written into its command line."""
        return self.target.host is None and self.target.sudo_user is None

    def argv(self, command: Command, tag: str = "") -> list[str]:
        """What runs on this machine: the command itself, or the wrapper running it
        (under sudo), or the ssh that runs that."""
        if self.shell or (self.target.host is not None and isinstance(command, str)):
            script = command if isinstance(command, str) else shlex.join(command)
            argv = ["/bin/sh", "-c", script]
        else:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            script = f"exec {shlex.join(argv)}"  # the program leads its group: no sh between
        if not self.wrapped:
            return argv
        if not self.here:
            script = inner_script(script, self.cwd)
        wrapped = wrapped_argv(self.target, script, tag or new_tag(), self.kill_grace)
        if self.target.host is None:
            return wrapped
        return self.target.ssh_argv(shlex.join(wrapped))

    def _cannot_start(self, command: Command) -> str | None:
        """Why a command for this machine cannot start, told before the wrapper hides it
        behind a shell's "not found"."""
        if not self.here:
            return None
        if self.cwd is not None and not os.path.isdir(self.cwd):
            return f"Could not start: no such directory: {self.cwd}"
        if self.shell:
            return None
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv:
            return "Could not start: an empty command"
        program = argv[0]
        if os.sep in program:
            path = program if self.cwd is None else os.path.join(self.cwd, program)
            found = os.access(path, os.X_OK) and not os.path.isdir(path)
        else:
            search = (self.env or {}).get("PATH", os.environ.get("PATH", os.defpath))
            found = shutil.which(program, path=search) is not None
        return None if found else f"Could not start: no such program: {program}"

    def __call__(self, trail_env: Any, context: Any) -> str:
        command = self.command(trail_env, context)
        if command is None:
            return "No command to run."
        text = command if isinstance(command, str) else shlex.join(command)
        where = None if self.target.host is None else self.target.where
        trail_env.output(f"{label(text, where)} -- Starting.")
        refused = self._cannot_start(command)
        if refused is not None:
            refusal = ShellCommandFailedError(text, None, None, refused, where)
            trail_env.output(str(refusal))
            raise refusal
        wrapped = self.wrapped
        run = _Run(self, trail_env, Markers(new_tag()) if wrapped else None)
        here = self.here
        environment = None if self.env is None or not here else {**os.environ, **self.env}
        try:
            process = subprocess.Popen(
                self.argv(command, run.markers.tag if run.markers else ""),
                stdin=subprocess.PIPE if wrapped else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self.cwd if here else None, env=environment, start_new_session=True,
            )
        except OSError as exc:
            raise ShellCommandFailedError(text, None, None, f"Could not start: {exc}",
                                          where) from exc
        if process.stdin is not None and run.markers is not None:
            _INPUTS.add(process.stdin.fileno())
            try:
                process.stdin.write(preamble(None if here else self.env))
                process.stdin.flush()
            except BrokenPipeError:
                pass  # it ended at once (ssh could not connect, sudo refused): told below
        # The step stops the command itself, through the wrapper's input (so the host
        # can say it did); the manager's signals to the group come only if that fails.
        trail_env.adopt_process_group(
            process.pid, self.kill_grace + REMOTE_STOP_MARGIN + 1 if wrapped else None)
        wake = _Wake()
        take_back = trail_env.on_interrupt(wake)
        try:
            timed_out = run.pump(process, wake.fd)
            exit_code = process.wait()
        finally:
            take_back()
            wake.close()
            close_input(process)
        if run.stopped:
            confirmed, detail = run.how_it_stopped(process.returncode)
            trail_env.report_stop(where, confirmed, detail)
        if trail_env.interrupted:
            raise StepInterruptedError(f"{label(text, where)} -- interrupted")
        error = self._failure(run, text, where, exit_code, timed_out)
        if error is not None:
            trail_env.output(str(error))
            raise error
        if run.markers is not None and run.markers.exit_code is not None:
            exit_code = run.markers.exit_code
        message = f"{label(text, where)} -- Succeeded with exit code: {exit_code}."
        trail_env.output(message)
        return ShellResult(message, text, exit_code, run.captured["STDOUT"],
                           run.captured["STDERR"])

    def _failure(self, run: _Run, text: str, where: str | None, exit_code: int,
                 timed_out: bool) -> ShellCommandFailedError | None:
        """Why the command failed, or None if it succeeded."""
        markers = run.markers
        if markers is not None:
            if markers.exit_code is not None:
                exit_code = markers.exit_code
            elif where is None or exit_code != SSH_FAILED or timed_out:
                pass  # not ssh's failure
            elif not markers.started:
                problem, transient = diagnose(run.before_start)
                detail = run.before_start[-1] if run.before_start else None
                return HostUnreachableError(text, where or "", problem, detail, transient)
            else:
                # Started, but no exit status came back: the connection broke.
                said = run.captured["STDERR"][-1:] or ["ssh ended without the exit status"]
                return HostUnreachableError(text, where or "", "connection lost", said[0],
                                            transient=True, during=True)
        last_error = run.fatal or (run.captured["STDERR"][-1] if run.captured["STDERR"]
                                   else None)
        if timed_out:
            return ShellCommandFailedError(
                text, exit_code, last_error, f"Timed out after {self.timeout:g} s", where)
        if self.target.sudo_user is not None and sudo_wants_password(run.before_start):
            return ShellCommandFailedError(
                text, exit_code, last_error,
                f"sudo -u {self.target.sudo_user} asks for a password, which trail never "
                "types: allow this command without a password (NOPASSWD) in sudoers", where)
        if markers is not None and not markers.started:
            return ShellCommandFailedError(
                text, exit_code, last_error,
                f"Did not start{' on the host' if where else ''} (exit code {exit_code})",
                where)
        if not self.is_exit_code_ignorable(exit_code) or run.fatal is not None:
            return ShellCommandFailedError(text, exit_code, last_error, "", where)
        return None


# The write ends of wrapped commands' input in this process. Closing one is how a command
# is told to stop, so no other process may hold a copy: a step forked meanwhile by the
# process executor (os.fork keeps every descriptor) closes them at once.
_INPUTS: set[int] = set()


def _close_inputs_in_child() -> None:
    for fd in _INPUTS:
        try:
            os.close(fd)
        except OSError:
            pass
    _INPUTS.clear()


os.register_at_fork(after_in_child=_close_inputs_in_child)


def close_input(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        _INPUTS.discard(process.stdin.fileno())
        # What a command that ended at once (sudo refusing) did not read is dropped; the
        # descriptor is closed all the same.
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()


class _Wake:
    """A pipe that wakes a command's reader when its step is interrupted (the hook given
    to ``trail_env.on_interrupt``: called on the manager's thread, or in a signal handler
    of the step's process)."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._lock = threading.Lock()
        self._open = True

    def __call__(self) -> None:
        if self._lock.acquire(blocking=False):  # not: it is being closed
            try:
                if self._open:
                    with contextlib.suppress(BlockingIOError):
                        os.write(self._w, b"!")
            finally:
                self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._open = False
            os.close(self.fd)
            os.close(self._w)


class _Run:
    """One run of a ShellCommand: reads both pipes as lines arrive, reports and keeps them."""

    def __init__(self, shell: ShellCommand, trail_env: Any, markers: Markers | None) -> None:
        self.shell = shell
        self.trail_env = trail_env
        self.markers = markers
        self.captured: dict[str, list[str]] = {"STDOUT": [], "STDERR": []}
        self.before_start: list[str] = []  # stderr from ssh and sudo, before the command
        self.fatal: str | None = None
        # The line being read on each pipe: its pieces, bytes kept, bytes past the limit.
        self._parts: dict[str, list[bytes]] = {"STDOUT": [], "STDERR": []}
        self._held = {"STDOUT": 0, "STDERR": 0}
        self._lost = {"STDOUT": 0, "STDERR": 0}
        self._chars = {"STDOUT": 0, "STDERR": 0}  # characters in captured, per stream
        self.stopped = False  # the command was told to stop (interrupt or timeout)
        self._stage = 0  # how far its stop went: 1 asked, 2 SIGTERM, 3 SIGKILL

    def pump(self, process: subprocess.Popen[bytes], wake: int) -> bool:
        """Report lines until both pipes close; True if the command was stopped for its
        timeout. A byte on ``wake`` (the step was interrupted) stops the command."""
        assert process.stdout is not None and process.stderr is not None
        with selectors.DefaultSelector() as selector:
            for name, stream in (("STDOUT", process.stdout), ("STDERR", process.stderr)):
                os.set_blocking(stream.fileno(), False)
                selector.register(stream, selectors.EVENT_READ, name)
            selector.register(wake, selectors.EVENT_READ, "STOP")
            pidfd = self._watch_exit(process, selector)
            try:
                return self._read(process, selector, poll_exit=pidfd is None)
            finally:
                if pidfd is not None and pidfd in selector.get_map():
                    selector.unregister(pidfd)
                    os.close(pidfd)

    def _stop(self, process: subprocess.Popen[bytes]) -> float | None:
        """The next move in stopping the command; when the one after is due (None: none).

        A wrapped command is asked first, through its input: its watcher stops the group
        where the command is (on the host, as its user), and the wrapper's last words
        (the exit code) still come back. Signals from here follow if it has not ended in
        the grace period and a margin: SIGTERM to the group, SIGKILL after the grace
        period (a grandchild may ignore SIGTERM and hold the pipes open)."""
        self.stopped = True
        self._stage += 1
        grace = self.shell.kill_grace
        if self._stage == 1 and self.markers is not None:
            close_input(process)  # the watcher's end of input: stop the command
            return time.monotonic() + grace + REMOTE_STOP_MARGIN
        if self._stage <= 2:
            self._stage = 2
            signal_groups([process.pid], signal.SIGTERM)
            return time.monotonic() + grace
        signal_groups([process.pid], signal.SIGKILL)
        return None

    def _read(self, process: subprocess.Popen[bytes], selector: selectors.BaseSelector,
              poll_exit: bool) -> bool:
        timeout = self.shell.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        wrapped = self.markers is not None
        while any(key.data != "STOP" for key in selector.get_map().values()):
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                timed_out = timed_out or not self.stopped
                deadline = self._stop(process)
                continue
            if wrapped and poll_exit:  # no pidfd: look now and then
                wait = EXIT_POLL if wait is None else min(wait, EXIT_POLL)
                if process.poll() is not None:
                    close_input(process)  # the wrapper (or ssh) ended: see _watch_exit
            for key, _ in selector.select(wait):
                name = key.data
                if name == "STOP":
                    selector.unregister(key.fileobj)  # once is enough
                    if not self.stopped:
                        deadline = self._stop(process)
                    continue
                if name == "EXIT":
                    selector.unregister(key.fileobj)
                    os.close(key.fd)
                    close_input(process)  # the wrapper (or ssh) ended: see _watch_exit
                    continue
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fileobj)
                    if self._held[name] or self._lost[name]:
                        self._end_line(name)
                    continue
                *ended, rest = chunk.split(b"\n")
                for piece in ended:
                    self._hold(name, piece)
                    self._end_line(name)
                self._hold(name, rest)
        return timed_out

    def how_it_stopped(self, returncode: int) -> tuple[bool, str]:
        """Whether the command is known to have ended after it was told to stop, and how:
        on a host, only the wrapper's word (its exit code) confirms it."""
        markers = self.markers
        if markers is None or markers.exit_code is not None:
            code = returncode if markers is None or markers.exit_code is None \
                else markers.exit_code
            return True, f"the command ended ({exit_text(code)})"
        if not markers.started and returncode == 0 and self._stage < 2:
            return True, "before the command started"  # its input ended before the wrapper ran it
        said = self.captured["STDERR"][-1] if self.captured["STDERR"] else None
        said = said or (self.before_start[-1] if self.before_start else None)
        return False, ("no word that the command ended" + (f" ({said})" if said else "")
                       + "; if it started, its watcher there stops it as the connection "
                       "closes")

    def _hold(self, name: str, piece: bytes) -> None:
        """Add ``piece`` to the line being read on ``name``, up to MAX_LINE_BYTES: a long
        line costs what it is long (each chunk is looked at once), never its square."""
        room = MAX_LINE_BYTES - self._held[name]
        if room > 0 and piece:
            self._parts[name].append(piece[:room])
            self._held[name] += min(room, len(piece))
        self._lost[name] += max(0, len(piece) - max(room, 0))

    def _end_line(self, name: str) -> None:
        text = b"".join(self._parts[name]).decode(errors="replace").rstrip("\r")
        if self._lost[name]:
            text += (f" [trail] ... truncated: {self._lost[name]} more bytes of this line "
                     f"not kept")
        self._parts[name], self._held[name], self._lost[name] = [], 0, 0
        self.line(name, text)

    def _watch_exit(self, process: subprocess.Popen[bytes],
                    selector: selectors.BaseSelector) -> int | None:
        """For a wrapped command, wake when the process we started ends (a pidfd), to close
        its input: if the command's group still holds the pipes then, the wrapper was
        killed (its group is signalled on interrupt) and the watcher left behind must hear
        it; after a normal end the close changes nothing. None when there is no pidfd."""
        if self.markers is None or not hasattr(os, "pidfd_open"):
            return None
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError:  # an old kernel; or the process is gone already
            return None
        selector.register(pidfd, selectors.EVENT_READ, "EXIT")
        return pidfd

    def line(self, name: str, line: str) -> None:
        """Report one line; remember it if it is a fatal error."""
        shell = self.shell
        if name == "STDERR":
            if self.markers is not None and self.markers.take(line):
                return
            if self.markers is None or not self.markers.started:
                self.before_start.append(line)  # ssh's or sudo's, or the command's
                del self.before_start[:-MAX_SSH_LINES]
        ignorable = shell.is_output_ignorable if name == "STDOUT" else shell.is_error_ignorable
        if ignorable(line):
            return
        kept = self.captured[name]
        kept.append(line)
        self._chars[name] += len(line)
        if len(kept) > MAX_KEPT_LINES or self._chars[name] > MAX_KEPT_CHARS:
            drop = 0
            while drop < len(kept) - 1 and (len(kept) - drop > MAX_KEPT_LINES
                                            or self._chars[name] > MAX_KEPT_CHARS):
                self._chars[name] -= len(kept[drop])
                drop += 1
            del kept[:drop]
        self.trail_env.output(f"[{name}] -- {line}")
        if name == "STDERR" and shell.is_error_fatal(line):
            self.fatal = self.fatal or line


def exit_text(code: int) -> str:
    """An exit code as read by a person: a shell's 128+N, or a negative returncode, names
    the signal N."""
    number = -code if code < 0 else code - 128 if code > 128 else 0
    try:
        return f"exit code {code}, {signal.Signals(number).name}" if number else \
            f"exit code {code}"
    except ValueError:
        return f"exit code {code}"
