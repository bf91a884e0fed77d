"""The durable context: what a step changes in the context reaches the steps after it,
whatever the executor (a forked step sends back what it changed), and is saved in the
journal with the step's end."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

from trail import Step, TrailServer
from trail.layer1 import context as durable
from trail.layer1.journal import Journal
from trail.layer1.run import Settings
from trail.testing import InProcessTrail


class Notes:
    def __init__(self) -> None:
        self.value = ""
        self.items: list[str] = []


def write(trail_env, context):
    context.value = "written"
    context.items.append("a")  # in place: sent back all the same


def read(trail_env, context):
    return {"value": context.value, "items": list(context.items)}


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_a_steps_change_to_a_plain_context_reaches_the_next_step(executor):
    notes = Notes()
    a, b = Step(write, name="write"), Step(read, name="read")
    with InProcessTrail([(a, b)], notes, settings=Settings(executor=executor)) as trail:
        trail.client.start()
        trail.run_until(lambda: trail.state("read") == "Succeeded", "read to succeed")
        value = trail.client.status(fields=["Return value"], name="read")[0]["Return value"]
    assert value == {"value": "written", "items": ["a"]}
    assert notes.value == "written"  # the server's own context has it


def test_a_failed_steps_change_comes_back_too():
    def fail(trail_env, context):
        context.value = "half done"
        raise RuntimeError("boom")

    notes = Notes()
    with InProcessTrail(Step(fail, name="fail"), notes,
                        settings=Settings(executor="process")) as trail:
        trail.client.start()
        trail.run_until(lambda: trail.state("fail") == "Paused due to failure", "the failure")
    assert notes.value == "half done"


def test_the_context_is_saved_in_the_journal_with_the_steps_end(tmp_path):
    journal = tmp_path / "journal.sqlite3"
    server = TrailServer(Step(write, name="write"), context=Notes(), journal=journal,
                         executor="process")
    server.serve(threaded=True)
    from tests.support import wait_until
    from trail import TrailClient

    client = TrailClient(server.socket_file, timeout=10)
    client.start()
    wait_until(lambda: client.info()["finished"], "the trail to finish")
    run_id = client.info()["run"]
    client.shutdown(dry_run=False)
    server.join(30)
    book = Journal(journal)
    saved = {name: pickle.loads(data) for name, data in book.saved_context(run_id).items()}
    book.close()
    assert saved == {"value": "written", "items": ["a"]}


@pytest.mark.parametrize("executor", ["process", "thread"])
@pytest.mark.parametrize("kind", ["object", "dict"])
def test_a_part_a_step_deletes_is_gone_for_the_next_step_and_from_the_journal(
        tmp_path, executor, kind):
    """``del context.x`` in a step: the next step (and the server's own context) no longer
    has it, and neither has the journal, so a take-up does not bring it back."""
    def forget(trail_env, context):
        if isinstance(context, dict):
            del context["value"]
        else:
            del context.value

    def look(trail_env, context):
        return "value" in context if isinstance(context, dict) else hasattr(context, "value")

    notes: Any = {"value": "old", "items": []} if kind == "dict" else Notes()
    if kind == "object":
        notes.value = "old"
    journal = tmp_path / "journal.sqlite3"
    server = TrailServer(Step(forget, name="forget") >> Step(look, name="look"),
                         context=notes, journal=journal, executor=executor)
    server.serve(threaded=True)
    from tests.support import wait_until
    from trail import TrailClient

    client = TrailClient(server.socket_file, timeout=10)
    client.start()
    wait_until(lambda: client.info()["finished"], "the trail to finish")
    assert client.status(fields=["Return value"], name="look")[0]["Return value"] is False
    run_id = client.info()["run"]
    client.shutdown(dry_run=False)
    server.join(30)
    book = Journal(journal)
    saved = set(book.saved_context(run_id))
    book.close()
    assert "value" not in saved and "items" in saved
    assert not (("value" in notes) if kind == "dict" else hasattr(notes, "value"))


def test_what_cannot_be_saved_is_named_one_line_each():
    class Held:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.name = "ok"

    found = durable.problems(Held())
    assert len(found) == 1
    assert found[0].startswith("context attribute 'lock' cannot be saved (")
    assert durable.problems(Notes()) == []
    assert durable.problems(None) == []
