"""A value is shown the same live and after the server is killed and the run taken up from
the journal: a date, a Decimal, a set, and an exception that cannot be pickled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wait_states, wait_until
from trail import TrailClient, TrailConnectionError

ROOT = Path(__file__).parents[2]
RUNBOOK = str(Path(__file__).parent / "values_runbook.py")
FIELDS = ["State", "Return value", "Output messages"]

# What status() shows, live and after recovery alike (trail.layer1.values.shown).
EXPECTED = {
    "date": ("Succeeded", "2024-01-02", ["2024-01-02"]),
    "decimal": ("Succeeded", "1.10", []),
    "set": ("Succeeded", [1, 2, 3], [[1, 2, 3]]),
    "raise": ("Failed", "LocalError: the disk is full", []),
}


class Server:
    """`trail run` of the values runbook as a real process, on a fixed socket and journal."""

    def __init__(self, tmp: Path, executor: str) -> None:
        self.socket = str(tmp / "values.sock")
        self.journal = str(tmp / "journal.sqlite3")
        self.executor = executor
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> TrailClient:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trail", "run", RUNBOOK, "--plain", "--socket", self.socket,
             "--journal", self.journal, "--executor", self.executor],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = TrailClient(self.socket, timeout=10)
        wait_until(lambda: _answers(client), "the server to answer")
        return client

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def _answers(client: TrailClient) -> bool:
    try:
        client.info()
    except TrailConnectionError:
        return False
    return True


def shown(client: TrailClient) -> dict[str, tuple]:
    return {row["Name"]: tuple(row[field] for field in FIELDS)
            for row in client.status(fields=FIELDS)}


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_values_read_the_same_after_a_kill(tmp_path, executor):
    server = Server(tmp_path, executor)
    try:
        client = server.start()
        client.start(dry_run=False)
        wait_states(client, {name: state for name, (state, _, _) in EXPECTED.items()})
        live = shown(client)
        server.kill()
        client = server.start()
        assert client.info()["resumed"], "the restarted server did not take up the run"
        recovered = shown(client)
        assert recovered == live
        assert live == EXPECTED
        client.shutdown(dry_run=False)
    finally:
        server.stop()
