"""The journal: what it records, when, and how a run is taken up again."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import wait_states, wait_until
from trail import Step, TrailClient, TrailServer
from trail.layer1.journal import Journal, JournalMismatchError

ROOT = Path(__file__).parents[2]


def chain(*names: str, fail: str = ""):
    def make(name):
        def action(trail_env, context):
            if name == fail:
                raise RuntimeError(f"{name} broke")
            return threading.Lock() if name == "lock" else {"step": name}
        return action

    steps = [Step(make(n), name=n) for n in names]
    return list(zip(steps, steps[1:], strict=False)) if len(steps) > 1 else steps[0]


def talking(says: str, asks: str):
    """A step that says something, then asks and returns the answer."""
    def action(trail_env, context):
        trail_env.output(says)
        return trail_env.input(asks)
    return action


def serve(definition, journal: Path, **options) -> tuple[TrailServer, TrailClient]:
    server = TrailServer(definition, journal=journal, **options)
    server.serve(threaded=True)
    return server, TrailClient(server.socket_file)


def shut(server: TrailServer, client: TrailClient) -> None:
    client.shutdown(dry_run=False)
    assert server.join(20)


def test_a_call_is_in_the_journal_when_it_is_acknowledged(tmp_path):
    journal = tmp_path / "j.sqlite3"
    server, client = serve(chain("a", "b", "c"), journal, name="acked")
    try:
        reader = sqlite3.connect(journal)
        for name in ("a", "b", "c"):
            client.pause(dry_run=False, name=name)
            # Read by another connection right after the reply: already committed.
            rows = reader.execute(
                "SELECT new, cause FROM transitions t JOIN steps s ON s.run_id = t.run_id "
                "AND s.n = t.n WHERE s.name = ? ORDER BY t.id", (name,)).fetchall()
            assert rows[0] == ("To Pause", "api:pause"), rows
    finally:
        shut(server, client)


def test_the_journal_keeps_values_messages_and_who_asked(tmp_path):
    journal = tmp_path / "j.sqlite3"
    steps = [Step(talking("hello", "name?"), name="talk"), *(Step(a, name=n) for n, a in
             [("lock", lambda e, c: threading.Lock()), ("bad", lambda e, c: 1 / 0)])]
    server, client = serve([(steps[0], steps[1]), (steps[1], steps[2])], journal,
                           name="values")
    try:
        client.start()
        wait_until(client.steps_waiting_for_user_input, "the question")
        client.send_message_to_steps("ada", dry_run=False)
        wait_states(client, {"bad": "Paused due to failure"})
    finally:
        shut(server, client)
    book = Journal(journal)
    run = book.latest_run("values")
    assert run["outcome"] == "shut down" and run["ended"] is not None
    saved = book.saved_steps(run["id"])
    assert saved[0].output == ["hello"] and saved[0].prompts == ["name?"]
    assert saved[0].inputs == ["ada"] and saved[0].return_value == "ada"
    db = sqlite3.connect(journal)
    kinds = dict(db.execute("SELECT name, return_kind FROM steps WHERE run_id = ?",
                            (run["id"],)).fetchall())
    assert kinds == {"talk": "shown", "lock": "shown", "bad": "shown"}
    assert saved[1].return_value.startswith("<unlocked _thread.lock object at ")
    assert saved[2].return_value == "ZeroDivisionError: division by zero"
    causes = [(change["name"], change["new"], change["cause"]) for change in
              book.timeline(run["id"])]
    assert ("talk", "Waiting", "api:start") in causes
    # The failure's cause says what went wrong (`trail history` shows it).
    assert ("bad", "Paused due to failure", "raised: ZeroDivisionError: division by zero") \
        in causes


def test_resume_takes_up_a_run_that_was_shut_down(tmp_path):
    journal = tmp_path / "j.sqlite3"
    server, client = serve(chain("a", "b", "c", fail="b"), journal, name="again")
    client.start()
    wait_states(client, {"a": "Succeeded", "b": "Paused due to failure"})
    first_run = server.run_id
    shut(server, client)
    # resume=True takes it up (a run that was shut down, not crashed) as it was ...
    server, client = serve(chain("a", "b", "c"), journal, name="again", resume=True)
    try:
        assert server.run_id == first_run and client.info()["resumed"]
        assert {r["Name"]: r["State"] for r in client.status()} == {
            "a": "Succeeded", "b": "Paused due to failure", "c": "Waiting"}
        client.rerun(dry_run=False, name="b")  # ... and the cause is fixed now
        wait_states(client, {"b": "Succeeded", "c": "Succeeded"})
    finally:
        shut(server, client)
    # Without resume, a run that was shut down is not taken up: a new one starts.
    server, client = serve(chain("a", "b", "c"), journal, name="again")
    try:
        assert server.run_id != first_run and not client.info()["resumed"]
        assert {r["State"] for r in client.status()} == {"Ready"}
    finally:
        shut(server, client)


def test_a_changed_trail_is_refused_with_its_differences(tmp_path):
    journal = tmp_path / "j.sqlite3"
    book = Journal(journal)
    shape = {"steps": [[0, "a"], [1, "b"]], "edges": [[0, 1]]}
    run_id = book.new_run("changed", shape, [(0, "a", "Succeeded", True),
                                             (1, "b", "Running", True)], "/nonexistent.sock",
                          origin=str(Path(__file__).resolve()))  # this script's trail
    book.close()  # never closed: its server "died"
    with pytest.raises(JournalMismatchError) as caught:
        TrailServer(chain("a", "x", "c"), journal=journal, name="changed")
    message = str(caught.value)
    assert f"unfinished run {run_id}" in message
    assert "step 1 was 'b', is 'x'" in message and "step 2 'c' is new" in message
    assert "link 1 -> 2 is new" in message
    server = TrailServer(chain("a", "x", "c"), journal=journal, name="changed", resume=False)
    with server:
        assert server.run_id != run_id
    assert Journal(journal).run(run_id)["outcome"] == "abandoned"


def test_a_crashed_run_is_taken_up_with_its_states(tmp_path):
    journal = tmp_path / "j.sqlite3"
    book = Journal(journal)
    shape = {"steps": [[0, "a"], [1, "b"], [2, "c"]], "edges": [[0, 1], [1, 2]]}
    book.new_run("crashed", shape, [(0, "a", "Succeeded", True), (1, "b", "Running", True),
                                    (2, "c", "To Pause", True)], "/nonexistent.sock")
    book.close()
    server, client = serve(chain("a", "b", "c"), journal, name="crashed")
    try:
        assert client.info()["resumed"]
        assert {r["Name"]: r["State"] for r in client.status()} == {
            "a": "Succeeded", "b": "Interrupted", "c": "To Pause"}
        client.resume(dry_run=False, name="b")
        wait_states(client, {"b": "Succeeded", "c": "Paused"})
    finally:
        shut(server, client)


def test_idempotent_steps_run_again_after_a_crash(tmp_path):
    journal = tmp_path / "j.sqlite3"
    book = Journal(journal)
    book.new_run("idem", {"steps": [[0, "a"]], "edges": []}, [(0, "a", "Running", True)],
                 "/nonexistent.sock")
    book.close()
    server, client = serve(Step(lambda e, c: "again", name="a", idempotent=True), journal,
                           name="idem")
    try:
        wait_states(client, {"a": "Succeeded"})
    finally:
        shut(server, client)


def test_autotrail_dag_file_and_restore_trail(tmp_path):
    dag_file = tmp_path / "dag.json"
    server, client = serve(chain("a", "b", "c", fail="b"), False, dag_file=str(dag_file))
    client.start()
    wait_states(client, {"b": "Paused due to failure"})
    shut(server, client)
    data = json.loads(dag_file.read_text())
    assert data["a"]["State"] == "Succeeded" and data["b"]["parents"] == ["a"]
    server = TrailServer(chain("a", "b", "c"), journal=False)
    server.restore_trail(str(dag_file))
    server.serve(threaded=True)
    client = TrailClient(server.socket_file)
    try:
        assert {r["Name"]: r["State"] for r in client.status()} == {
            "a": "Succeeded", "b": "Paused due to failure", "c": "Waiting"}
    finally:
        shut(server, client)


def test_trail_history_lists_runs_and_a_timeline(tmp_path):
    journal = tmp_path / "j.sqlite3"
    a = Step(talking("checking the replicas", "Promote which replica?"), name="a")
    b = Step(lambda env, ctx: "b", name="b")
    server, client = serve([(a, b)], journal, name="told")
    client.pause(dry_run=False, name="b")
    client.start()
    wait_until(lambda: client.status(fields=["Waiting for response"], name="a")[0][
        "Waiting for response"], "the question")
    client.send_message_to_steps("db2", dry_run=False, name="a")
    wait_states(client, {"a": "Succeeded", "b": "Paused"})
    shut(server, client)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "150"}
    runs = subprocess.run([sys.executable, "-m", "trail", "history", "--journal", str(journal),
                           "--json"], capture_output=True, text=True, env=env, check=True)
    listed = json.loads(runs.stdout)
    assert listed[0]["name"] == "told" and listed[0]["outcome"] == "shut down"
    text = subprocess.run([sys.executable, "-m", "trail", "history", "--journal", str(journal),
                           str(listed[0]["id"])], capture_output=True, text=True, env=env,
                          check=True).stdout
    assert "api:pause" in text and "To Pause" in text and "returned" in text
    lines = text.splitlines()

    def line_of(words: str) -> int:
        return next(i for i, line in enumerate(lines) if words in line)

    # In order: what the step said, what it asked, what it was told, then how it ended.
    assert (line_of("said") < line_of("asked") < line_of("was told")
            < line_of("Running -> Succeeded"))
    assert "checking the replicas" in lines[line_of("said")]
    assert "Promote which replica?" in lines[line_of("asked")]
    assert "db2" in lines[line_of("was told")]
    states = subprocess.run([sys.executable, "-m", "trail", "history", "--journal",
                             str(journal), str(listed[0]["id"]), "--states-only"],
                            capture_output=True, text=True, env=env, check=True).stdout
    assert "api:pause" in states and "checking the replicas" not in states


@pytest.mark.parametrize("bad, error", [
    ({"executor": "bogus"}, "unknown executor 'bogus'"),
    ({"max_parallel": 0}, "max_parallel must be at least 1"),
])
def test_a_server_that_cannot_start_leaves_no_run_to_take_up_and_no_socket(
        tmp_path, bad, error):
    journal = tmp_path / "j.sqlite3"
    socket_file = tmp_path / "s.sock"
    with pytest.raises(ValueError, match=error):
        TrailServer(chain("a", "b"), journal=journal, socket_file=str(socket_file), **bad)
    assert not socket_file.exists()
    assert all(run["ended"] is not None for run in Journal(journal).runs())
    # The same trail, changed, starts without being taken for a crashed run of the above.
    server, client = serve(chain("a", "b", "c"), journal, socket_file=str(socket_file))
    assert not server.resumed
    shut(server, client)


def test_a_step_waiting_for_its_retry_keeps_its_back_off_and_count_across_a_crash(tmp_path):
    journal = tmp_path / "j.sqlite3"
    ran_at = tmp_path / "ran_at"
    book = Journal(journal)
    shape = {"steps": [[0, "a"], [1, "b"]], "edges": [[0, 1]]}
    run_id = book.new_run("retrying", shape, [(0, "a", "Succeeded", True),
                                              (1, "b", "Waiting", True)], "/nonexistent.sock")
    retry_at = time.time() + 2
    book.step(run_id, 1, state="Waiting", attempt=2, pause_on_fail=True,
              return_value="ConnectionError: try 2 failed", started_at=None,
              finished_at=None, tries=2, retry_at=retry_at)
    book.commit()
    book.close()  # its server "died" while b waited out its back-off

    def b(trail_env, context):
        ran_at.write_text(repr(time.time()))
        return "ok"

    a = Step(lambda env, ctx: "a", name="a")
    step_b = Step(b, name="b", retries=3, retry_delay=60)
    server, client = serve([(a, step_b)], journal, name="retrying")
    try:
        row = client.status(fields=["State", "Attempt", "Next retry at"], name="b")[0]
        assert row["State"] == "Waiting" and row["Next retry at"] == pytest.approx(retry_at)
        wait_states(client, {"b": "Succeeded"})
        assert float(ran_at.read_text()) >= retry_at  # not at once, as before the crash
        assert client.status(fields=["Attempt"], name="b")[0]["Attempt"] == "3 of 4"
    finally:
        shut(server, client)


def test_a_journal_from_before_retry_columns_is_upgraded_in_place(tmp_path):
    from trail.layer1.journal import SCHEMA

    journal = tmp_path / "old.sqlite3"
    old_schema = "\n".join(line for line in SCHEMA.splitlines()
                           if not line.lstrip().startswith(("tries ", "retry_at ")))
    with sqlite3.connect(journal) as db:
        db.executescript(old_schema)
        db.execute("INSERT INTO runs (name, shape, started) VALUES ('old', '{}', 0)")
    server, client = serve(chain("a", "b"), journal, name="fresh")
    try:
        client.start()
        wait_states(client, {"a": "Succeeded", "b": "Succeeded"})
    finally:
        shut(server, client)
    names = [run["name"] for run in Journal(journal).runs()]
    assert "old" in names and "fresh" in names


def test_a_mismatch_message_is_short_and_says_how_to_start_fresh(tmp_path):
    journal = tmp_path / "j.sqlite3"
    book = Journal(journal)
    steps = [[n, f"s{n}"] for n in range(1000)]
    book.new_run("big", {"steps": steps, "edges": []},
                 [(n, name, "Succeeded", True) for n, name in steps], "/nonexistent.sock",
                 origin=str(Path(__file__).resolve()))
    book.close()
    with pytest.raises(JournalMismatchError) as caught:
        TrailServer([Step(lambda e, c: None, name=f"t{n}") for n in range(1000)],
                    journal=journal, name="big")
    message = str(caught.value)
    assert len(message) < 500, message
    assert "1000 difference(s)" in message and "and 997 more" in message
    assert "trail run RUNBOOK --fresh" in message and "resume=False" in message
    assert len(caught.value.differences) == 1000


def test_the_dag_file_is_autotrails_json_byte_for_byte(tmp_path):
    """AutoTrail's DAG file is written piece by piece (a 100,000-step trail's in a third of
    the time): the same text as json.dumps of the whole dict, for steps untouched and not."""
    from trail.core.dag import make_trail_graph
    from trail.layer1.dagfile import write_dag_file
    from trail.layer1.run import Run

    a, b, c = (Step(lambda e, x: None, name=name) for name in ("a", 'b "é"', "c"))
    graph = make_trail_graph([(a, b), (a, c), (b, c)])
    run = Run(graph)
    run.records[1].add_output("hello")
    run.records[1].add_output({"a set": {1}})
    run.records[2].set_return_value(ValueError("no ☃"))
    write_dag_file(str(tmp_path / "dag.json"), run.records, graph)
    expected = {record.name: {
        "State": record.state.value, "Return value": str(record.shown_return_value),
        "Prompt messages": list(record.prompt_messages),
        "Output messages": list(record.output_messages),
        "Input messages": list(record.input_messages),
        "parents": [parent.name for parent in graph.predecessors(record.step)],
    } for record in run.records}
    assert (tmp_path / "dag.json").read_text() == json.dumps(expected, default=str)


def test_a_journal_left_as_trail_closed_it_is_not_read_whole_again(tmp_path):
    """The whole-file check (quick_check) reads every page: 0.7 s for 50 MB at every
    `trail run` of an operator's journal. A journal that nothing touched since trail closed
    it cleanly is taken as checked; anything else that wrote to it, or a page overwritten
    in place, is checked again (and a damaged one refused)."""
    from trail.errors import JournalError
    from trail.layer1.journal import unchanged_since_close

    path = tmp_path / "j.sqlite3"
    first = Journal(path)
    first.new_run("book", {"steps": [[0, "a"]], "edges": []}, [(0, "a", "Ready", False)], None)
    first.close()
    assert unchanged_since_close(path)
    assert oct((tmp_path / "j.sqlite3-closed").stat().st_mode & 0o777) == oct(0o600)
    Journal(path, verify=False).close()  # a reader leaves it as it was
    assert unchanged_since_close(path)

    other = sqlite3.connect(path)  # another program writes to it
    other.execute("CREATE TABLE notes (x)")
    other.commit()
    other.close()
    assert not unchanged_since_close(path)
    Journal(path).close()  # checked again, and fine: marked anew
    assert unchanged_since_close(path)

    data = bytearray(path.read_bytes())  # a page overwritten, the size unchanged
    page = 4096
    data[page: page + 64] = b"\xff" * 64  # the b-tree page header of page 2
    path.write_bytes(bytes(data))
    assert not unchanged_since_close(path)
    with pytest.raises(JournalError, match="move it aside"):
        Journal(path)
