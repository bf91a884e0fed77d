"""What steps put in the context survives a kill -9: step A stores a value, the server is
killed before B runs, and B sees A's value (and the context made at the first start) after
`trail run` takes the run up, with the process and the thread executor, for a plain
object, a dict and a threadsafe_class context."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import RunbookProcess, wait_until

RUNBOOK = str(Path(__file__).parent / "context_runbook.py")
ROOT = Path(__file__).parents[2]


def value_of(client, name: str):
    return client.status(fields=["Return value"], name=name)[0]["Return value"]


def state_of(client, name: str) -> str:
    return client.status(fields=["State"], name=name)[0]["State"]


@pytest.mark.parametrize(("kind", "executor"), [
    ("plain", "process"), ("plain", "thread"), ("dict", "process"),
    ("shared", "process"), ("shared", "thread"),
])
def test_the_context_survives_a_kill_between_two_steps(tmp_path, kind, executor):
    server = RunbookProcess(RUNBOOK, tmp_path, "context", CONTEXT_KIND=kind,
                            CONTEXT_EXECUTOR=executor)
    try:
        client = server.start()
        client.start(dry_run=False)
        wait_until(client.steps_waiting_for_user_input, "W to ask")
        stored = value_of(client, "A")
        server.kill()  # A has ended, B has not started

        client = server.start()
        assert client.info()["resumed"]
        assert state_of(client, "W") == "Interrupted"
        client.resume(dry_run=False)
        wait_until(client.steps_waiting_for_user_input, "W to ask again")
        client.send_message_to_steps("go", dry_run=False, name="W")
        seen = server.finished_steps()["B"]  # B runs, the trail ends, trail run exits
        assert seen.state == "Succeeded"
        assert seen.return_value == {"value": stored["value"], "made": stored["made"],
                                     "seen": ["A"]}
    finally:
        server.stop()


def test_a_shared_context_process_dies_with_a_killed_server(tmp_path):
    server = RunbookProcess(RUNBOOK, tmp_path, "context", CONTEXT_KIND="shared")
    try:
        server.start()
        assert server.process is not None
        children = subprocess.run(["pgrep", "-P", str(server.process.pid)],
                                  capture_output=True, text=True).stdout.split()
        assert children, "the threadsafe_class manager process was not found"
        os.kill(server.process.pid, 9)  # the server only, not its session
        server.process.wait(10)
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children),
                   "the manager process to end with the server")
    finally:
        server.stop()


def test_an_unsaveable_context_attribute_is_named_at_the_start(tmp_path):
    runbook = tmp_path / "locked.py"
    runbook.write_text(
        "import threading\n"
        "from trail import Step\n"
        "class Ctx:\n"
        "    def __init__(self):\n"
        "        self.lock = threading.Lock()\n"
        "        self.name = 'x'\n"
        "context = Ctx()\n"
        "def hello(trail_env, context):\n"
        "    return context.name\n"
        "trail = Step(hello, name='hello')\n")
    result = subprocess.run(
        [sys.executable, "-m", "trail", "run", str(runbook), "--plain",
         "--journal", str(tmp_path / "journal.sqlite3"), "--socket", str(tmp_path / "s.sock")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if "'lock'" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "cannot be saved" in lines[0] and "pickle" in lines[0]


def test_the_failover_example_promotes_the_chosen_replica_after_a_kill(tmp_path):
    # Found as a user: answer db3, kill -9, take up: promote must act on db3 in the same
    # cluster, not on an empty host name in a new one.
    failover = str(ROOT / "examples" / "failover.py")
    server = RunbookProcess(failover, tmp_path, "failover")
    try:
        client = server.start()
        client.start(dry_run=False)
        wait_until(lambda: [r for r in client.steps_waiting_for_user_input()
                            if r["Name"] == "choose_replica"], "the replica question")
        client.send_message_to_steps("db3", dry_run=False, name="choose_replica")
        wait_until(lambda: [r for r in client.steps_waiting_for_user_input()
                            if r["Name"] == "fence_old_primary"], "the fencing instruction")
        server.kill()

        client = server.start()
        assert client.info()["resumed"]
        client.resume(dry_run=False)
        wait_until(lambda: [r for r in client.steps_waiting_for_user_input()
                            if r["Name"] == "fence_old_primary"], "the instruction again")
        client.send_message_to_steps(True, dry_run=False, name="fence_old_primary")
        verify = server.finished_steps()["verify"]  # the fail-over ends, trail run exits
        assert verify.return_value == "fail-over to db3 complete"
    finally:
        server.stop()
