"""`trail web` as a real process against real trail servers: the token gate, the listing,
a run's state followed through the event stream, steering through the HTTP API (dry run
first), questions answered, trails that end and trails that appear, the web process
killed while a run goes on."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.layer2.webtools import WebProcess, row_state
from tests.support import require, wait_states, wait_until
from trail import Step, TrailClient


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A private socket directory (short path: Unix socket paths are short) that the web
    process scans as its user's, apart from every other test's trails."""
    path = Path(tempfile.mkdtemp(prefix="tw-"))
    (path / "trail").mkdir(mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def web(runtime: Path) -> Iterator[WebProcess]:
    require("dot")
    process = WebProcess(runtime, "--user", "tester")
    yield process
    process.stop()


def html_and_question():
    def loud(env: Any, context: Any) -> str:
        env.output("<script>alert('x')</script> & <b>bold</b>")
        return "said it"

    first = Step(loud, name="first")
    ask = Step(lambda env, context: env.input("which replica?"), name="ask")
    last = Step(lambda env, context: "done", name="last")
    return first >> ask >> last


def start(serve: Any, runtime: Path, definition: Any, name: str) -> TrailClient:
    client: TrailClient = serve(definition, socket_file=str(runtime / "trail" / f"{name}.sock"))
    return client


def test_every_page_and_route_needs_the_token(web: WebProcess, serve: Any,
                                              runtime: Path) -> None:
    start(serve, runtime, html_and_question(), "gate")
    key = web.key_of("first")
    for path in ("/", f"/runs/{key}", "/api/trails", f"/api/runs/{key}", "/api/calls",
                 f"/api/events?run={key}", "/static/trail.js", "/static/style.css"):
        status, body = web.get(path, token=False)
        assert status == 401, path
        assert web.token not in str(body)
        assert web.request("GET", path, headers={"X-Trail-Token": "wrong"})[0] == 401, path
        assert web.request("GET", path + ("&" if "?" in path else "?") + "token=nope")[0] == 401
    status, _ = web.get(f"/?token={web.token}", token=False)
    assert status == 200
    assert web.request("GET", "/api/trails", headers={
        "Authorization": f"Bearer {web.token}"})[0] == 200
    # A change needs the token in a header: not the query string, not a cookie.
    call = f"/api/runs/{key}/calls/pause"
    body = {"tags": {"name": "ask"}, "dry_run": False}
    assert web.request("POST", f"{call}?token={web.token}", body)[0] == 401
    assert web.request("POST", call, body, {"Cookie": f"trail_web_token={web.token}"})[0] == 401
    # ... and is refused from another site's page, token or not.
    status, text = web.post(call, body, Origin="http://evil.example")
    assert status == 403, text
    assert web.steer(key, "pause", True, tags={"name": "ask"}) == [{"n": 1, "name": "ask"}]
    status, _ = web.post(call, {**body, "dry_run": True}, Origin=web.base)
    assert status == 200


def test_listing_and_a_run_followed_and_steered(web: WebProcess, serve: Any,
                                                runtime: Path) -> None:
    client = start(serve, runtime, html_and_question(), "steer")
    key = web.key_of("first")
    status, page = web.get(f"/runs/{key}")
    assert status == 200 and 'data-page="run"' in page
    stream = web.events(key)
    snapshot = stream.wait_for("the snapshot", lambda m: m["type"] == "snapshot")
    assert [(r["n"], r["Name"], r["State"]) for r in snapshot["rows"]] == [
        (0, "first", "Ready"), (1, "ask", "Ready"), (2, "last", "Ready")]
    assert 'data-step="ask"' in snapshot["svg"] and 'data-state="Ready"' in snapshot["svg"]
    calls = {c["name"] for c in snapshot["calls"] if c["mutating"]}
    assert {"pause", "resume", "skip", "interrupt", "rerun", "send_message_to_steps",
            "stop", "next_step", "start"} <= calls

    # Every change: the dry run says what would change and changes nothing.
    status, preview = web.post(f"/api/runs/{key}/calls/pause", {"tags": {"n": 1}})
    assert status == 200 and preview["dry_run"] is True  # dry run unless told otherwise
    assert preview["result"] == [{"n": 1, "name": "ask"}]
    assert preview["stranded"] == [{"n": 2, "name": "last"}]  # it would wait behind ask
    assert web.steer(key, "skip", True, tags={"n": 2}) == [{"n": 2, "name": "last"}]
    assert client.status(fields=["State"])[1]["State"] == "Ready"
    web.steer(key, "pause", False, tags={"n": 1})
    stream.wait_for("ask To Pause", row_state("ask", "To Pause"))
    web.steer(key, "start", False)
    stream.wait_for("first Succeeded", row_state("first", "Succeeded"))
    out = stream.wait_for("the HTML-looking output", lambda m: m.get("event", {}).get(
        "kind") == "output")
    assert out["row"]["last"] == "<script>alert('x')</script> & <b>bold</b>"
    wait_states(client, {"ask": "Paused"})

    # Resume: the step asks; the page is told, and the answer from the page is given.
    assert web.steer(key, "resume", True, tags={"name": "ask"}) == [{"n": 1, "name": "ask"}]
    web.steer(key, "resume", False, tags={"name": "ask"})
    asked = stream.wait_for("the question", lambda m: m.get("row", {}).get("question")
                            == "which replica?")
    assert asked["row"]["Name"] == "ask"
    assert web.steer(key, "send_message_to_steps", True, tags={"n": 1},
                     args={"message": "db2"}) == [{"n": 1, "name": "ask"}]
    assert client.steps_waiting_for_user_input()  # a dry run answers nothing
    web.steer(key, "send_message_to_steps", False, tags={"n": 1}, args={"message": "db2"})
    done = stream.wait_for("ask Succeeded", row_state("ask", "Succeeded"))
    assert done["row"]["Return value"] == "db2"
    stream.wait_for("last Succeeded", row_state("last", "Succeeded"))

    # A call that is not a steering call, or a bad body, is refused with a reason.
    assert web.post(f"/api/runs/{key}/calls/status", {})[0] == 404
    assert web.post(f"/api/runs/{key}/calls/pause", {"dry_run": "yes"})[0] == 400
    status, error = web.post(f"/api/runs/{key}/calls/pause", {"tags": "ask"})
    assert status == 400 and "tags" in error["error"]
    stream.close()


def test_trails_come_and_go_without_a_restart(web: WebProcess, serve: Any,
                                              runtime: Path) -> None:
    listing = web.events()
    listing.wait_for("an empty listing", lambda m: m["type"] == "trails" and not m["trails"])
    client = start(serve, runtime, html_and_question(), "late")
    key = web.key_of("first")
    listing.wait_for("the new trail", lambda m: m["type"] == "trails" and any(
        t["key"] == key and t["live"] for t in m["trails"]))
    stream = web.events(key)
    stream.wait_for("the snapshot", lambda m: m["type"] == "snapshot")
    client.shutdown(dry_run=False)
    assert client.server.join(30)  # type: ignore[attr-defined]
    stream.wait_for("the run shown as ended", lambda m: m["type"] == "ended")
    listing.wait_for("the trail listed as ended", lambda m: m["type"] == "trails" and any(
        t["key"] == key and not t["live"] for t in m["trails"]))
    # Steering an ended run says why it cannot.
    status, error = web.post(f"/api/runs/{key}/calls/pause", {"tags": {}})
    assert status == 409 and "not running" in error["error"]
    # The journal has it: the history and its timeline, who did what included.
    past = web.get("/api/trails")[1]["past"]
    assert any(str(run["id"]) == key for run in past)
    listing.close()
    stream.close()


def test_history_of_a_finished_run(web: WebProcess, serve: Any, runtime: Path) -> None:
    client = start(serve, runtime, html_and_question(), "hist")
    key = web.key_of("first")
    web.steer(key, "start", False)
    wait_until(client.steps_waiting_for_user_input, "the question")
    client.send_message_to_steps("db3", dry_run=False, name="ask")
    wait_states(client, {"last": "Succeeded"})
    client.shutdown(dry_run=False)
    assert client.server.join(30)  # type: ignore[attr-defined]
    web.key_of("first", live=False)
    # A web process started afterwards knows the run from the journal alone.
    later = WebProcess(runtime)
    try:
        status, run = later.get(f"/api/runs/{key}")
        assert status == 200, run
        assert run["history"] and not run["live"]
        assert [(r["Name"], r["State"]) for r in run["rows"]] == [
            ("first", "Succeeded"), ("ask", "Succeeded"), ("last", "Succeeded")]
        assert 'data-state="Succeeded"' in run["svg"]
        timeline = later.get(f"/api/runs/{key}/timeline")[1]["timeline"]
        kinds = {(e["name"], e["kind"]) for e in timeline}
        assert {("ask", "prompt"), ("ask", "input"), ("first", "output")} <= kinds
        # Who did what: the page's changes are journaled as the web's, with the user.
        assert any(e["kind"] == "state" and e["cause"] == "api:start by web:tester"
                   for e in timeline)
        assert later.get("/api/runs/999999")[0] == 404
    finally:
        later.stop()


def test_killing_the_web_process_leaves_the_run_going(runtime: Path, serve: Any) -> None:
    require("dot")
    web = WebProcess(runtime)
    client = start(serve, runtime, html_and_question(), "kill")
    key = web.key_of("first")
    stream = web.events(key)
    stream.wait_for("the snapshot", lambda m: m["type"] == "snapshot")
    web.steer(key, "start", False)
    stream.wait_for("ask Running", row_state("ask", "Running"))
    web.process.kill()
    web.process.wait(10)
    stream.close()
    wait_until(client.steps_waiting_for_user_input, "the question, still asked")
    client.send_message_to_steps("after", dry_run=False, name="ask")
    wait_states(client, {"ask": "Succeeded", "last": "Succeeded"})


def test_token_from_file_or_environment_and_never_logged(runtime: Path, serve: Any,
                                                         tmp_path: Path) -> None:
    require("dot")
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0123456789\n")
    web = WebProcess(runtime, "--token-file", str(token_file))
    try:
        assert web.token == "file-token-0123456789"
        start(serve, runtime, html_and_question(), "tok")
        key = web.key_of("first")
        web.steer(key, "pause", False, tags={"n": 1})
        assert web.get(f"/?token={web.token}", token=False)[0] == 200
        assert web.get("/api/trails", token=False)[0] == 401
    finally:
        out, err = web.stop()
    assert out.count(web.token) == 1  # the one line with the URL
    assert web.token not in err
    env_web = WebProcess(runtime, TRAIL_WEB_TOKEN="env-token-abcdef")
    try:
        assert env_web.token == "env-token-abcdef"
        assert env_web.get("/api/trails")[0] == 200
    finally:
        env_web.stop()


def test_the_page_ships_inside_the_package() -> None:
    """A non-editable install has the page: setup.cfg lists the static files as package
    data, and every file the app serves is among them (the pattern does not recurse)."""
    import configparser

    from trail.layer2.web.app import STATIC

    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[2] / "setup.cfg")
    assert config["options.package_data"]["trail.layer2.web"].split() == ["static/*"]
    served = {entry.name for entry in STATIC.iterdir()}
    assert {"index.html", "run.html", "trail.js", "style.css"} <= served
    assert all(entry.is_file() for entry in STATIC.iterdir())


def test_clear_errors_at_start(runtime: Path, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    def web(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime),
               "PYTHONPATH": str(Path(__file__).parents[2])}
        return subprocess.run([sys.executable, "-m", "trail", "web", *args], env=env,
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    result = web("--token-file", str(tmp_path / "nope"))
    assert result.returncode == 2 and "cannot read the token file" in result.stderr
    (tmp_path / "empty").write_text("\n")
    result = web("--token-file", str(tmp_path / "empty"))
    assert result.returncode == 2 and "is empty" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = web("--port", str(taken.getsockname()[1]))
    assert result.returncode == 2 and "in use" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_step_names_in_the_diagram_are_text() -> None:
    require("dot")
    from trail.layer2.web.hub import diagram_svg

    svg = diagram_svg([{"n": 0, "name": "<img src=x onerror=alert(1)>"},
                       {"n": 1, "name": 'say "hi" & go'}], [[0, 1]], {0: "Running"})
    assert "<img" not in svg
    assert 'data-step="&lt;img src=x onerror=alert(1)&gt;" data-state="Running"' in svg
    assert 'data-step="say &quot;hi&quot; &amp; go" data-state=""' in svg


def test_without_graphviz_the_page_still_shows_and_steers(runtime: Path, serve: Any) -> None:
    web = WebProcess(runtime, PATH="/nonexistent")  # no `dot` to be found
    try:
        start(serve, runtime, html_and_question(), "nodot")
        key = web.key_of("first")
        stream = web.events(key)
        snapshot = stream.wait_for("the snapshot", lambda m: m["type"] == "snapshot")
        assert "No diagram" in snapshot["svg"] and "graphviz" in snapshot["svg"]
        assert len(snapshot["rows"]) == 3
        web.steer(key, "pause", False, tags={"n": 1})
        stream.wait_for("ask To Pause", row_state("ask", "To Pause"))
        stream.close()
    finally:
        web.stop()


def test_the_hub_reads_the_status_again_when_a_runs_events_were_lost(serve: Any,
                                                                     tmp_path: Path):
    """A page's follower that falls behind a busy run loses events (ZeroMQ drops them):
    in the middle of the run (a gap in their numbers) or at its end (no later event tells
    of that gap). Either way the follower reads the status again, and the page ends with
    every step as it is."""
    from trail.layer2.web.hub import Hub, Watched

    # Three events a step, far more than the sockets queue for a reader that reads nothing
    # (EVENTS_QUEUED on each side).
    count = 12_000
    steps = [Step(lambda e, c: None, name=f"quick@web{i}", host=f"web{i}") for i in range(count)]
    client = serve(steps, executor="thread")
    hub = Hub(lambda: [], tmp_path / "journal.sqlite3")
    watched = Watched(hub, client.socket_file)  # its stream is not read while the run floods
    client.start(dry_run=False)
    client.wait(timeout=60)
    follower = threading.Thread(target=watched.follow, daemon=True)
    follower.start()
    try:
        # (Events were lost, and the follower counted them: it read the status again.)
        wait_until(lambda: watched.mirror.counts() == {"Succeeded": count}
                   and watched.stream.missed > 0,
                   "the page's mirror to show every step done, events lost", timeout=30)
    finally:
        hub.stopping.set()
        follower.join(10)


def test_a_chatty_steps_rows_carry_its_newest_lines_and_the_rest_is_a_link_away(
        web: WebProcess, serve: Any, runtime: Path) -> None:
    """The page is sent a step's newest 200 lines (at each of its events: the whole output
    each time grew as its square) and how many it has; the whole output is plain text at
    its own address, behind the token, live and from the journal."""
    def chatty(env: Any, context: Any) -> None:
        for i in range(250):
            env.output(f"line {i} <b>not html</b>")

    client = start(serve, runtime, Step(chatty, name="chatty"), "chatty")
    key = web.key_of("chatty")
    web.steer(key, "start", False)
    wait_states(client, {"chatty": "Succeeded"})

    def row() -> dict[str, Any]:
        rows = web.get(f"/api/runs/{key}")[1]["rows"]
        return rows[0] if rows[0]["output_count"] == 250 else {}
    found = wait_until(row, "the page's row to have every line counted")
    assert found["Output messages"] == [f"line {i} <b>not html</b>" for i in range(50, 250)]
    path = f"/api/runs/{key}/steps/0/output"
    assert web.get(path, token=False)[0] == 401
    status, text = web.get(path)
    assert status == 200
    assert text.splitlines() == [f"line {i} <b>not html</b>" for i in range(250)]
    assert web.get(f"/api/runs/{key}/steps/7/output")[0] == 404
    client.shutdown(dry_run=False)
    assert client.server.join(30)  # type: ignore[attr-defined]
    history = web.key_of("chatty", live=False)
    status, text = web.get(f"/api/runs/{history}/steps/0/output")
    assert status == 200 and len(text.splitlines()) == 250, text[:200]
