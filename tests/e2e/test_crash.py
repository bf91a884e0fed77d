"""A server killed with SIGKILL at random moments restarts from its journal and loses
nothing: every step runs to success exactly once, except the steps that were running at a
kill, which come back Interrupted and run again when resumed."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support import RunbookProcess, wait_until
from trail import TrailClient, TrailClientError, TrailConnectionError

RUNBOOK = str(Path(__file__).parent / "crash_runbook.py")
KILLS = int(os.environ.get("TRAIL_CRASH_KILLS", "20"))
STEPS = int(os.environ.get("TRAIL_CRASH_STEPS", "200"))


def Server(tmp: Path, **env: str) -> RunbookProcess:  # noqa: N802 (reads as the class it makes)
    """`trail run` of the crash runbook as a real process, on a fixed socket and journal."""
    return RunbookProcess(RUNBOOK, tmp, "crash", CRASH_LOG=str(tmp / "ran.log"), **env)


def recovered_running(journal: str) -> Counter[int]:
    """How often each step came back from the journal having been running at a kill."""
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT n FROM transitions WHERE cause LIKE '%it was running'")
        return Counter(n for (n,) in rows)


def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    # Steps of ~25 ms: the kills (about 0.14 s apart) land before, during and after them.
    server = Server(tmp_path, CRASH_STEPS=str(STEPS), CRASH_SLEEP="0.02")
    rng = random.Random(int(os.environ.get("TRAIL_CRASH_SEED", "7")))
    try:
        client = server.start()
        client.start(dry_run=False)
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.02, 0.25))
            assert not client.info()["finished"], (
                f"the trail finished after {kill} kills; give it more steps")
            server.kill()
            client = server.start()
            info = client.info()
            assert info["resumed"], "the restarted server did not take up the run"
            client.resume(dry_run=False)  # the operator resumes what was interrupted
        # The trail finishes and trail run exits: its steps as the journal has them.
        finished = server.finished_steps()
        assert {step.state for step in finished.values()} == {"Succeeded"}
    finally:
        server.stop()
    ran = Counter((tmp_path / "ran.log").read_text().split())
    again = recovered_running(server.journal)
    assert sum(again.values()) > 0, "no kill hit a running step: the test proved little"
    for i in range(STEPS):
        name = f"s{i}"
        assert ran[name] >= 1, f"{name} never ran"
        # More than once only if it was running when the server died.
        assert ran[name] <= 1 + again[i], f"{name} ran {ran[name]} times, recovered {again[i]}"


def test_a_kill_while_a_step_waits_for_input(tmp_path):
    server = Server(tmp_path, CRASH_STEPS="3", CRASH_ASK_AT="1")
    try:
        client = server.start()
        client.start(dry_run=False)
        wait_until(client.steps_waiting_for_user_input, "the question")
        server.kill()
        client = server.start()
        row = client.status(fields=["State", "Prompt messages", "Output messages"], name="s1")
        assert row[0]["State"] == "Interrupted"
        assert row[0]["Prompt messages"] == ["s1: go on?"]  # the question is still there
        client.resume(dry_run=False)
        waiting = wait_until(client.steps_waiting_for_user_input, "the question again")
        assert waiting[0]["Waiting for response"] == "s1: go on?"
        client.send_message_to_steps("yes", dry_run=False, name="s1")
        # The trail finishes and trail run exits: the answer is in the journal.
        s1 = server.finished_steps()["s1"]
        assert (s1.state, s1.inputs, s1.return_value) == ("Succeeded", ["yes"], "yes")
    finally:
        server.stop()


def test_a_kill_during_a_burst_of_api_calls_keeps_every_acknowledged_call(tmp_path):
    server = Server(tmp_path, CRASH_STEPS="200")
    acknowledged: list[str] = []
    try:
        client = server.start()  # not started: every step is Ready, and pausable

        def burst() -> None:
            burst_client = TrailClient(server.socket, timeout=2)
            for i in range(200):
                try:
                    done = burst_client.pause(dry_run=False, name=f"s{i}")
                except (TrailConnectionError, TrailClientError):
                    return
                acknowledged.extend(step["name"] for step in done)

        sender = threading.Thread(target=burst)
        sender.start()
        wait_until(lambda: len(acknowledged) >= 20, "some calls to be acknowledged")
        server.kill()
        sender.join(30)
        client = server.start()
        states = {row["Name"]: row["State"] for row in client.status(fields=["State"])}
        assert acknowledged, "no call was acknowledged before the kill"
        lost = [name for name in acknowledged if states[name] not in ("To Pause", "Paused")]
        assert not lost, f"acknowledged pauses lost in the crash: {lost}"
        client.shutdown(dry_run=False)
    finally:
        server.stop()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_journal_is_an_error_never_a_fresh_start(tmp_path, damage):
    # Not started: no step of this first run writes to ran.log before its shutdown.
    server = RunbookProcess(RUNBOOK, tmp_path, "crash", "--no-start",
                            CRASH_LOG=str(tmp_path / "ran.log"), CRASH_STEPS="5")
    client = server.start()
    client.shutdown(dry_run=False)
    server.process.wait(30)  # type: ignore[union-attr]
    journal = Path(server.journal)
    for extra in ("-wal", "-shm"):
        Path(f"{journal}{extra}").unlink(missing_ok=True)
    if damage == "garbage":
        journal.write_bytes(b"this is not a journal" * 100)
    else:
        data = journal.read_bytes()
        journal.write_bytes(data[: len(data) // 2])
    result = subprocess.run(
        [sys.executable, "-m", "trail", "run", RUNBOOK, "--plain", "--socket", server.socket,
         "--journal", str(journal)], env=server.env, capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 2
    assert f"the journal at {journal}" in result.stderr
    assert "move it aside" in result.stderr
    assert not (tmp_path / "ran.log").exists() or (tmp_path / "ran.log").read_text() == ""
    # Reading it (trail history opens it without the whole-file check) is one line too.
    looked = subprocess.run([sys.executable, "-m", "trail", "history", "--journal",
                             str(journal)], env=server.env, capture_output=True, text=True,
                            timeout=60)
    assert looked.returncode == 2 and looked.stderr.startswith("trail: error:"), looked.stderr
    assert "Traceback" not in looked.stderr
