"""Helpers the tests share: waiting with a generous deadline, reading a run's states."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEADLINE = 20.0  # generous: a slow CI machine must not fail a correct run


def wait_until(predicate: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def states(client: Any) -> dict[str, str]:
    return {row["Name"]: row["State"] for row in client.status(fields=["State"])}


def wait_states(client: Any, expected: dict[str, str], timeout: float = DEADLINE) -> None:
    """Wait until every named step is in the given state."""
    last: dict[str, str] = {}

    def reached() -> bool:
        nonlocal last
        last = states(client)
        return all(last.get(name) == state for name, state in expected.items())

    try:
        wait_until(reached, f"states {expected}", timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {last}") from None


def names(steps: list[dict[str, Any]]) -> list[str]:
    return [step["name"] for step in steps]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone between the two looks
        return False


def wait_pids(path: Path, what: str) -> list[int]:
    """The pids a step writes to ``path``, once written: the file exists, empty, a moment
    before its content does."""
    def written() -> list[str]:
        return path.read_text().split() if path.exists() else []
    return [int(pid) for pid in wait_until(written, what)]


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def require(program: str) -> str:
    """The path of a program a test needs: missing fails in CI, skips (loudly) elsewhere.
    Daemons are looked for in the sbin directories too, which a user's PATH may lack."""
    import shutil

    import pytest

    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path:
        return path
    message = f"{program} is not installed (scripts/setup installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def crash_while_running(book: Path, journal: Path, executor: str = "process") -> int:
    """Run the runbook with `trail run`, wait for its command to print ``pgid=N`` and for
    the command's child (a ``sleep 600``) to start, then SIGKILL the whole server. Returns
    N: the command's process group, for the caller to check it is gone."""
    import re
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "trail", "run", str(book), "--plain", "--journal",
         str(journal), "--executor", executor],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert process.stdout is not None
        pgid = None
        for line in process.stdout:
            found = re.search(r"\[STDOUT\] -- pgid=(\d+)", line)
            if found:
                pgid = int(found.group(1))
                break
        assert pgid is not None, "the command never started"

        def child() -> bool:
            members = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True)
            return len(members.stdout.split()) >= 2
        wait_until(child, "the command's child to start")
        process.kill()
        process.wait(30)
        return pgid
    finally:
        if process.poll() is None:
            process.kill()


def require_root() -> None:
    """sudo tests act as root, which may become any user with no password (CI is root):
    not root fails in CI, skips (loudly) elsewhere."""
    import pytest

    require("sudo")
    if os.getuid() != 0:
        message = "this test runs sudo as root (CI runs as root)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


class Tmux:
    """A real terminal: a tmux session on a private server, driven by keys, read by capture."""

    def __init__(self, command: str, width: int = 160, height: int = 40,
                 env: dict[str, str] | None = None) -> None:
        import subprocess
        import uuid

        self.tmux = require("tmux")
        self.server = f"trail-test-{uuid.uuid4().hex[:8]}"
        self._run = subprocess.run
        # The pane's size, whatever COLUMNS/LINES the test process inherited.
        sizes = {"COLUMNS": str(width), "LINES": str(height)}
        environment = " ".join(f"{k}={v!r}" for k, v in {**(env or {}), **sizes}.items())
        self.tmux_call("new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height),
                       f"{environment} {command}; echo EXIT=$?; sleep 600")

    def tmux_call(self, *args: str) -> str:
        result = self._run([self.tmux, "-L", self.server, *args], capture_output=True,
                           text=True, timeout=30)
        return result.stdout

    def screen(self) -> str:
        return self.tmux_call("capture-pane", "-p", "-t", "main", "-S", "-200")

    def keys(self, *keys: str) -> None:
        self.tmux_call("send-keys", "-t", "main", *keys)

    def wait_for(self, text: str, timeout: float = DEADLINE) -> str:
        text = text.rstrip()  # capture-pane drops trailing blanks
        try:
            return wait_until(lambda: screen if text in (screen := self.screen()) else "",
                              f"{text!r} on the screen", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{self.screen()}") from None

    def close(self) -> None:
        self.tmux_call("kill-server")
        with contextlib.suppress(OSError):  # the server's socket file stays behind
            os.unlink(f"/tmp/tmux-{os.getuid()}/{self.server}")


class RunbookProcess:
    """`trail run RUNBOOK --plain` as a real process on a fixed socket and journal, to be
    killed (SIGKILL to its whole session: the server and every step it ran) and started
    again on the same journal."""

    def __init__(self, runbook: str, tmp: Path, name: str, *args: str, **env: str) -> None:
        self.runbook = runbook
        self.socket = str(tmp / f"{name}.sock")
        self.journal = str(tmp / "journal.sqlite3")
        self.args = args
        root = Path(__file__).parents[1]
        self.env = {**os.environ, "PYTHONPATH": str(root), **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Any:
        from trail import TrailClient

        self.process = subprocess.Popen(
            [sys.executable, "-m", "trail", "run", self.runbook, "--plain", "--socket",
             self.socket, "--journal", self.journal, *self.args], env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        client = TrailClient(self.socket, timeout=10)
        wait_until(lambda: answers(client), "the server to answer")
        return client

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def finished_steps(self) -> dict[str, Any]:
        """Once `trail run` ends by itself (its trail finished, it exits at once: nothing
        can be asked of it after), each step of its run as the journal has it, by name."""
        from trail.layer1.journal import Journal

        assert self.process is not None
        assert self.process.wait(120) == 0, "trail run did not end with every step done"
        book = Journal(self.journal, verify=False)
        try:
            latest = max(run["id"] for run in book.runs())
            return {step.name: step for step in book.saved_steps(latest).values()}
        finally:
            book.close()


def answers(client: Any) -> bool:
    """The server behind ``client`` answers a call."""
    from trail import TrailConnectionError

    try:
        client.info()
    except TrailConnectionError:
        return False
    return True
