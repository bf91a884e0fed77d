"""Who asked: a request's ``by`` is journaled and published with the changes it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_states, wait_until
from trail import Step, TrailClient
from trail.errors import TrailClientError
from trail.layer1.journal import Journal


def two_steps():
    return Step(lambda e, c: "A", name="alpha") >> Step(lambda e, c: e.input("go?"), name="beta")


def test_by_is_in_the_journal_and_the_events(serve: Any, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    plain = serve(two_steps(), journal=str(journal))
    alice = TrailClient(plain.socket_file, timeout=10, by="web:alice")
    stream = alice.subscribe()
    alice.pause(dry_run=False, name="beta")
    event = stream.next(10)
    assert event is not None and event["cause"] == "api:pause by web:alice"
    plain.start(dry_run=False)  # no by: the cause is as before
    wait_states(plain, {"alpha": "Succeeded", "beta": "Paused"})
    alice.resume(dry_run=False, name="beta")
    wait_until(plain.steps_waiting_for_user_input, "beta's question")
    alice.send_message_to_steps("yes", dry_run=False, name="beta")
    wait_states(plain, {"beta": "Succeeded"})
    run_id = plain.info()["run"]
    causes = [(e["name"], e["cause"]) for e in Journal(journal).timeline(run_id)]
    assert ("beta", "api:pause by web:alice") in causes
    assert ("beta", "api:resume by web:alice") in causes
    assert ("alpha", "api:start") in causes
    # Who answered beta's question, in the journal with the answer.
    answers = [e for e in Journal(journal).timeline(run_id, messages=True)
               if e["kind"] == "input"]
    assert [(a["message"], a["cause"]) for a in answers] == [
        ("yes", "api:send_message_to_steps by web:alice")]
    stream.close()


def test_a_journal_written_before_answers_had_a_cause_is_read_and_written(
        tmp_path: Path) -> None:
    """An older journal's messages table has no cause column: it gets one, and its rows
    read as before."""
    import sqlite3

    path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE messages (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL,"
                     " n INTEGER NOT NULL, attempt INTEGER NOT NULL, time REAL NOT NULL,"
                     " kind TEXT NOT NULL, message TEXT NOT NULL);"
                     "INSERT INTO messages (run_id, n, attempt, time, kind, message) "
                     "VALUES (1, 0, 1, 0.0, 'input', '\"old\"');")
    db.close()
    book = Journal(path)
    book.message(1, 0, 1, "input", "new", "api:send_message_to_steps by web:bob")
    book.commit()
    rows = book.db.execute("SELECT message, cause FROM messages ORDER BY id").fetchall()
    book.close()
    assert rows == [('"old"', None), ('"new"', "api:send_message_to_steps by web:bob")]


@pytest.mark.parametrize("by", ["", "x" * 81, "two\nlines"])
def test_a_bad_by_is_refused_with_a_reason(serve: Any, by: str) -> None:
    client = serve(two_steps())
    with pytest.raises(TrailClientError, match="'by' must be"):
        TrailClient(client.socket_file, timeout=10, by=by).pause(name="beta")
