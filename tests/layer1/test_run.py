"""The Run without sockets: transitions, retries, back-off and timeouts on a MockClock.

Nothing here sleeps to test time: the clock moves by ``advance``; steps still run for
real (threads, or forked processes where a test needs a process to stop).
"""

from __future__ import annotations

import os
import threading

import pytest

from tests.support import pid_alive, wait_until
from trail import Step, StepTimeoutError, TransitionError
from trail.core.states import Action, State
from trail.layer1.events import StateChanged
from trail.layer1.run import Settings, take_up
from trail.testing import InProcessTrail, MockClock


def flaky(failures: int):
    """An action that fails its first ``failures`` calls, counting them in a list."""
    calls: list[int] = []

    def action(trail_env, context):
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError(f"try {len(calls)} failed")
        return f"ok on try {len(calls)}"

    return action, calls


def test_a_retry_waits_for_its_back_off_on_the_clock():
    action, calls = flaky(2)
    step = Step(action, name="flaky", retries=3, retry_delay=30, backoff=2, jitter=0)
    with InProcessTrail(step) as trail:
        trail.client.start()
        trail.run_until(lambda: len(calls) == 1 and trail.state("flaky") == "Waiting")
        row = trail.client.status(fields=["Attempt", "Next retry at"])[0]
        assert row["Attempt"] == "1 of 4" and row["Next retry at"] is not None
        trail.advance(29.9)
        trail.pump(0.05)
        assert len(calls) == 1 and trail.state("flaky") == "Waiting"  # not yet due
        trail.advance(0.2)
        trail.run_until(lambda: len(calls) == 2 and trail.state("flaky") == "Waiting")
        trail.advance(59)  # the second back-off is 60 s
        trail.pump(0.05)
        assert len(calls) == 2
        trail.advance(1.1)
        trail.run_until(lambda: trail.state("flaky") == "Succeeded")
        row = trail.client.status(fields=["Attempt", "Return value", "Output messages"])[0]
    assert row["Attempt"] == "3 of 4" and row["Return value"] == "ok on try 3"
    assert [m for m in row["Output messages"] if m.startswith("[trail]")] == [
        "[trail] attempt 1 of 4 failed (ConnectionError: try 1 failed); next attempt in 30.0 s",
        "[trail] attempt 2 of 4 failed (ConnectionError: try 2 failed); next attempt in 60.0 s",
    ]


def test_a_paused_retry_stays_held_past_its_time():
    action, calls = flaky(1)
    with InProcessTrail(Step(action, name="held", retries=1, retry_delay=10)) as trail:
        trail.client.start()
        trail.run_until(lambda: trail.state("held") == "Waiting" and len(calls) == 1)
        trail.client.pause(dry_run=False, name="held")
        trail.run_until(lambda: trail.state("held") == "Paused")
        trail.advance(3600)
        trail.pump(0.05)
        assert trail.state("held") == "Paused" and len(calls) == 1
        trail.client.resume(dry_run=False, name="held")
        trail.run_until(lambda: trail.state("held") == "Succeeded")


def test_a_timeout_fires_on_the_clock_and_stops_the_step_process(tmp_path):
    pid_file = tmp_path / "pid"

    def slow(trail_env, context):
        pid_file.write_text(str(os.getpid()))
        threading.Event().wait()  # until stopped

    settings = Settings(executor="process")
    with InProcessTrail(Step(slow, name="slow", timeout=120, kill_grace=1),
                        settings=settings) as trail:
        trail.client.start()
        trail.run_until(lambda: pid_file.exists() and pid_file.read_text() != "")
        pid = int(pid_file.read_text())
        trail.advance(119)
        trail.pump(0.05)
        assert trail.state("slow") == "Running" and pid_alive(pid)
        trail.advance(1)
        assert trail.state("slow") == "Paused due to failure"
        wait_until(lambda: (trail.pump(0.05), not pid_alive(pid))[1],
                   "the timed-out step's process to be gone")
        record = trail.run.records[0]
    assert isinstance(record.return_value, StepTimeoutError)
    assert record.shown_return_value == ("StepTimeoutError: step 'slow' timed out after "
                                         "120 s and was stopped")


def test_every_state_change_is_one_published_transition():
    with InProcessTrail(Step(lambda e, c: 7, name="a") >> Step(lambda e, c: 8, name="b")) \
            as trail:
        trail.client.pause(dry_run=False, name="b")
        trail.client.start()
        trail.run_until(lambda: trail.states() == {"a": "Succeeded", "b": "Paused"})
        moves = [(e.name, e.previous, e.state, e.cause) for e in trail.events
                 if isinstance(e, StateChanged)]
    assert moves == [
        ("b", "Ready", "To Pause", "api:pause"),
        ("a", "Ready", "Waiting", "api:start"),
        ("a", "Waiting", "Running", "started"),
        ("a", "Running", "Succeeded", "returned"),
        ("b", "To Pause", "Paused", "reached"),
    ]
    ended = next(e for e in trail.events if isinstance(e, StateChanged) and e.state == "Succeeded")
    assert ended.return_value == 7
    assert [e.seq for e in trail.events] == list(range(1, len(trail.events) + 1))


def test_an_illegal_move_changes_nothing():
    with InProcessTrail(Step(lambda e, c: 1, name="a")) as trail:
        record = trail.run.records[0]
        with pytest.raises(TransitionError):
            trail.run.apply(record, Action.SUCCEED, "test")
        assert record.state is State.READY and trail.events == []


def test_recovery_is_a_journaled_transition(tmp_path):
    """A step the journal says was running comes back through the transition table."""
    from trail.layer1.journal import Journal, JournalRun, SavedStep

    journal = Journal(tmp_path / "journal.sqlite3")
    run_id = journal.new_run("t", {}, [(0, "a", "Ready", True), (1, "b", "Ready", True)], None)
    trail = InProcessTrail(Step(lambda e, c: 1, name="a")
                           >> Step(lambda e, c: 2, name="b", idempotent=True))
    trail.run.journal = JournalRun(journal, run_id)
    saved = {n: SavedStep(n, name, "Running", True, 1, None, None, None, [], [], [])
             for n, name in ((0, "a"), (1, "b"))}
    take_up(trail.run, saved, "recovered")
    trail.run.commit()
    assert trail.states() == {"a": "Interrupted", "b": "Waiting"}
    rows = journal.db.execute("SELECT n, old, new, cause FROM transitions ORDER BY id").fetchall()
    assert rows == [(0, "Running", "Interrupted", "recovered: it was running"),
                    (1, "Running", "Waiting", "recovered: it was running")]
    trail.close()
    journal.close()


def test_mock_clock_never_goes_back():
    clock = MockClock(5.0)
    clock.advance(1.5)
    assert clock() == 6.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_pause_on_fail_and_shutdown_are_published_changes():
    from trail.layer1.events import PauseOnFailChanged, ShuttingDown

    with InProcessTrail(Step(lambda e, c: 1, name="a")) as trail:
        assert trail.client.unset_pause_on_fail(dry_run=False, name="a") == [{"n": 0, "name": "a"}]
        assert trail.run.records[0].pause_on_fail is False
        assert trail.client.shutdown(dry_run=False) is True
        assert trail.run.stopping
    changes = [e for e in trail.events if isinstance(e, (PauseOnFailChanged, ShuttingDown))]
    assert [(type(e).__name__, getattr(e, "pause_on_fail", None), e.cause) for e in changes] == [
        ("PauseOnFailChanged", False, "api:unset_pause_on_fail"),
        ("ShuttingDown", None, "api:shutdown"),
    ]
