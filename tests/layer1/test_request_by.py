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
    stream.close()


@pytest.mark.parametrize("by", ["", "x" * 81, "two\nlines"])
def test_a_bad_by_is_refused_with_a_reason(serve: Any, by: str) -> None:
    client = serve(two_steps())
    with pytest.raises(TrailClientError, match="'by' must be"):
        TrailClient(client.socket_file, timeout=10, by=by).pause(name="beta")
