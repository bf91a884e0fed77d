"""Notifications against real servers on loopback: an SMTP server (aiosmtpd) and HTTP
webhooks (http.server), a dead mail port, a hanging hook, and a real `trail run` killed
with SIGKILL and taken up."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunbookProcess, wait_states, wait_until
from trail import Step, TrailClient, TrailServer
from trail.layer2.notify.ledger import notifications

try:
    from aiosmtpd.controller import Controller
except ImportError:  # in CI a missing dependency fails, elsewhere it skips loudly
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("aiosmtpd is not installed (pip install -e .[dev])", allow_module_level=True)

SECRET = "hunter2-s3cr3t"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """A real SMTP server on loopback; ``mails`` are the messages it accepted."""

    def __init__(self) -> None:
        self.mails: list[email.message.EmailMessage] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(email.message_from_bytes(envelope.content,
                                                   policy=email.policy.default))
        return "250 OK"

    @property
    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=trail@example.com&to=ops@example.com"
                f"&mode=insecure")

    def texts(self) -> list[str]:
        return [f"{m['subject']}\n{m.get_body(('plain',)).get_content()}" for m in self.mails]


class Webhook:
    """A real HTTP server on loopback taking apprise's json:// posts; with ``hang`` each
    request waits until ``release`` is set."""

    def __init__(self, hang: bool = False) -> None:
        self.posts: list[dict[str, Any]] = []
        self.requests = threading.Event()
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"] or 0))
                hook.requests.set()
                if hang:
                    hook.release.wait(60)
                hook.posts.append({**json.loads(body), "auth": self.headers["Authorization"]})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "hook", *, secret: bool = False) -> str:
        user = f"trail:{SECRET}@" if secret else ""
        return f"json://{user}127.0.0.1:{self.port}/{path}"

    def titles(self) -> list[str]:
        return [post["title"] for post in self.posts]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture
def hooks() -> Iterator[Any]:
    made: list[Webhook] = []

    def make(hang: bool = False) -> Webhook:
        made.append(Webhook(hang))
        return made[-1]

    yield make
    for hook in made:
        hook.close()


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the destinations a test names: no TRAIL_NOTIFY, no config file of the user's."""
    monkeypatch.delenv("TRAIL_NOTIFY", raising=False)
    monkeypatch.delenv("TRAIL_WEB_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def served() -> Iterator[Any]:
    servers: list[TrailServer] = []

    def start(definition: Any, **options: Any) -> tuple[TrailServer, TrailClient]:
        server = TrailServer(definition, **options)
        servers.append(server)
        server.serve(threaded=True)
        return server, TrailClient(server.socket_file, timeout=10)

    yield start
    for server in servers:
        if server.serving:
            TrailClient(server.socket_file, timeout=10).shutdown(dry_run=False)
            server.join(30)


def broken(trail_env: Any, context: Any) -> None:
    trail_env.output("connecting to db1")
    trail_env.output("db1 refused the connection")
    raise RuntimeError("replica db1 is not reachable")


def fine(trail_env: Any, context: Any) -> str:
    return "ok"


def asks(trail_env: Any, context: Any) -> str:
    return f"told {trail_env.input('Which replica shall I promote?')}"


def test_a_failed_step_is_mailed_with_its_error_and_last_output(served: Any,
                                                                 mailbox: Mailbox,
                                                                 tmp_path: Path) -> None:
    server, client = served(Step(broken), journal=tmp_path / "j.sqlite3",
                            notify=[mailbox.url])
    client.start(dry_run=False)
    wait_states(client, {"broken": "Paused due to failure"})
    wait_until(lambda: mailbox.mails, "the failure mail")
    text = mailbox.texts()[0]
    assert "step 0 broken paused on failure" in text
    assert "replica db1 is not reachable" in text
    assert "db1 refused the connection" in text
    assert f"run {server.run_id} on {socket.gethostname()}" in text
    assert f"trail resume --socket {server.socket_file} n=0 --yes" in text


def test_a_question_reaches_a_webhook_with_the_step_and_how_to_answer(
        served: Any, hooks: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIL_WEB_URL", "http://127.0.0.1:8765/")
    hook = hooks()
    server, client = served(Step(asks), journal=tmp_path / "j.sqlite3", notify=[hook.url()])
    client.start(dry_run=False)
    wait_until(lambda: hook.posts, "the question's webhook")
    post = hook.posts[0]
    assert post["title"].endswith("step 0 asks waits for you")
    assert "Which replica shall I promote?" in post["message"]
    assert f"trail send --socket {server.socket_file} ANSWER n=0 --yes" in post["message"]
    assert f"http://127.0.0.1:8765/runs/{server.run_id}#step-0" in post["message"]


def test_dead_and_hanging_destinations_cost_the_run_nothing_and_show_in_the_ledger(
        served: Any, hooks: Any, tmp_path: Path) -> None:
    hanging = hooks(hang=True)
    dead_mail = f"mailto://127.0.0.1:{free_port()}?from=t@example.com&to=o@example.com"
    journal = tmp_path / "j.sqlite3"
    first = Step(broken, pause_on_fail=False)
    server, client = served([first, Step(fine, name="after")], journal=journal,
                            notify=[hanging.url(), dead_mail])
    other = Step(fine, name="other")
    del other  # a single chain: broken fails for good, the run finishes at once
    client.start(dry_run=False)
    wait_states(client, {"broken": "Failed"})
    wait_until(lambda: client.info()["finished"], "the run to finish")
    # The run is over while the hook still holds the failure notice unanswered.
    assert hanging.requests.wait(20)
    assert not hanging.posts
    wait_until(lambda: any(e["destination"].startswith("mailto://")
                           for e in _ledger(journal, server.run_id)),
               "the mail notice in the ledger")

    def mail_failed() -> bool:
        return any(e["destination"].startswith("mailto://") and e["outcome"] == "failed"
                   for e in _ledger(journal, server.run_id))

    wait_until(mail_failed, "the dead mail server's failure in the ledger")
    from click.testing import CliRunner

    from trail.layer2.cli import main

    shown = CliRunner().invoke(main, ["history", str(server.run_id), "--journal",
                                      str(journal), "--json"])
    assert shown.exit_code == 0, shown.output
    assert "failed to mailto://127.0.0.1" in shown.output
    assert "failed after 3 tries" in shown.output


def test_a_flapping_step_is_rate_limited(served: Any, hooks: Any, tmp_path: Path) -> None:
    hook = hooks()
    journal = tmp_path / "j.sqlite3"
    server, client = served([Step(broken, pause_on_fail=False)], journal=journal,
                            notify=[hook.url()])
    client.start(dry_run=False)
    for attempt in range(1, 5):
        wait_until(lambda count=attempt: len([e for e in _ledger(journal, server.run_id)
                                              if e["kind"] == "failed"]) == count,
                   f"failure {attempt}")
        wait_states(client, {"broken": "Failed"})
        if attempt < 4:
            client.rerun(dry_run=False, name="broken")
    outcomes = [e["outcome"] for e in _ledger(journal, server.run_id) if e["kind"] == "failed"]
    assert outcomes[-1] == "rate-limited"
    wait_until(lambda: sum("broken failed" in t for t in hook.titles()) == 3, "three notices")


def _ledger(journal: Path, run_id: int | None) -> list[dict[str, Any]]:
    import sqlite3

    db = sqlite3.connect(str(journal))
    try:
        return notifications(db, run_id or 0)
    finally:
        db.close()


def test_warn_after_and_escalation_from_the_config_file(served: Any, hooks: Any,
                                                        tmp_path: Path) -> None:
    everyone, oncall = hooks(), hooks()
    config = tmp_path / "config" / "trail"
    config.mkdir(parents=True)
    (config / "notify.yaml").write_text(
        "urls:\n"
        f"  - {everyone.url('all')}:\n"
        f"  - {oncall.url('oncall')}:\n"
        "    - tag: escalation\n")
    release = tmp_path / "release"

    def slow(trail_env: Any, context: Any) -> str:
        wait_until(release.exists, "the test to release the slow step", 60)
        return "done"

    server, client = served([Step(slow, warn_after=0.2),
                             Step(asks, escalate_after=0.5)],
                            journal=tmp_path / "j.sqlite3")
    client.start(dry_run=False)
    wait_until(lambda: any("runs long" in t for t in everyone.titles()), "the overdue notice")
    assert sum("runs long" in t for t in everyone.titles()) == 1
    release.touch()
    wait_until(lambda: oncall.posts, "the escalation")
    assert "ESCALATED" in oncall.titles()[0] and "asks waits for you" in oncall.titles()[0]
    assert "escalate_after" in oncall.posts[0]["message"]
    assert any("asks waits for you" in t for t in everyone.titles())
    assert not any("ESCALATED" in t for t in everyone.titles())  # escalations go on call
    client.send_message_to_steps("db2", dry_run=False, name="asks")
    wait_states(client, {"asks": "Succeeded"})


def test_the_run_finishing_is_told_on_failure_by_default_and_on_success_on_request(
        served: Any, hooks: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default, success = hooks(), hooks()
    monkeypatch.setenv("TRAIL_NOTIFY", f"succeeded={success.url()}")
    server, client = served([Step(fine)], journal=tmp_path / "j.sqlite3",
                            notify=[default.url()])
    client.start(dry_run=False)
    wait_until(lambda: success.posts, "the success notice")
    assert "run succeeded" in success.titles()[0]
    assert "1 Succeeded" in success.posts[0]["message"]
    server2, client2 = served([Step(broken, pause_on_fail=False)],
                              journal=tmp_path / "j2.sqlite3",
                              notify=[default.url(), {"url": success.url("only-failed"),
                                                      "on": ["finished"]}])
    client2.start(dry_run=False)
    wait_until(lambda: any("finished with failures" in t for t in default.titles()),
               "the failure notice")
    message = [p for p in default.posts if "finished with failures" in p["title"]][0]
    assert "1 Failed" in message["message"]
    assert f"trail history {server2.run_id}" in message["message"]
    wait_until(lambda: len(success.posts) == 2, "the on=finished destination's notice")
    assert "finished with failures" in success.titles()[1]
    # The success destination heard only of the success; the default one never of it.
    assert not any("succeeded" in t for t in default.titles())


def test_a_step_notify_tag_adds_its_own_destination(served: Any, hooks: Any,
                                                    tmp_path: Path) -> None:
    shared, own = hooks(), hooks()
    server, client = served([Step(fine), Step(broken, notify=["dba"])],
                            journal=tmp_path / "j.sqlite3",
                            notify=[shared.url(), f"dba={own.url()}"])
    client.start(dry_run=False)
    wait_states(client, {"broken": "Paused due to failure"})
    wait_until(lambda: own.posts and shared.posts, "both notices")
    assert own.titles() == shared.titles()


def test_a_step_may_name_a_url_of_its_own_and_other_steps_do_not_use_it(
        served: Any, hooks: Any, tmp_path: Path) -> None:
    own, shared = hooks(), hooks()
    server, client = served([Step(broken, name="first", pause_on_fail=False,
                                  notify=[{"url": own.url(), "on": ["failed"]}]),
                             Step(broken, name="second")],
                            journal=tmp_path / "j.sqlite3", notify=[f"failed={shared.url()}"])
    client.start(dry_run=False)
    wait_states(client, {"first": "Failed", "second": "Paused due to failure"})
    wait_until(lambda: len(shared.posts) == 2, "both failures at the shared destination")
    assert own.titles() == ["[trail first] step 0 first failed"]
    assert f"trail rerun --socket {server.socket_file} n=0 --yes" in own.posts[0]["message"]


def test_a_bad_destination_is_refused_with_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="notify entry 1: apprise cannot use 'nosuch://...'"):
        TrailServer(Step(fine), journal=tmp_path / "j.sqlite3", notify=["nosuch://x:y@z"])
    with pytest.raises(ValueError, match="on= takes"):
        TrailServer(Step(fine), journal=tmp_path / "j.sqlite3",
                    notify=[{"url": "json://127.0.0.1/x", "on": ["fial"]}])


RUNBOOK = '''
from trail import Step

def broken(trail_env, context):
    trail_env.output("about to fail")
    raise RuntimeError("it broke")

def asks(trail_env, context):
    return trail_env.input("carry on?")

trail = [(Step(broken), Step(asks))]
'''


def test_no_duplicate_after_kill_9_and_take_up_and_no_secret_anywhere(
        tmp_path: Path, hooks: Any) -> None:
    hook = hooks()
    book = tmp_path / "book.py"
    book.write_text(RUNBOOK)
    log_file = tmp_path / "run.log"
    process = RunbookProcess(str(book), tmp_path, "crash", "--notify", hook.url(secret=True),
                             "--log", str(log_file), XDG_CONFIG_HOME=str(tmp_path / "none"))
    try:
        client = process.start()
        wait_states(client, {"broken": "Paused due to failure"})
        wait_until(lambda: hook.posts, "the failure notice")
        assert hook.posts[0]["auth"]  # the password went where it belongs: to the hook
        # Killed once the notice is journaled as sent (a kill in the instant between the
        # service's answer and that mark sends it again: a notice is never lost).
        wait_until(lambda: [e["outcome"] for e in _ledger(tmp_path / "journal.sqlite3", 1)]
                   == ["sent"], "the notice journaled as sent")
        process.kill()
        client = process.start()  # takes the run up from the journal
        with client.subscribe() as stream:
            client.skip(dry_run=False, name="broken")
            wait_until(lambda: any("asks" in t for t in hook.titles()), "the question notice")
            status = json.dumps([client.status(fields=["Tags", "State", "Output messages"]),
                                 client.info()])
            client.send_message_to_steps("yes", dry_run=False, name="asks")
            events = []  # to the shutdown: `trail run` ends when the run has finished
            while (event := stream.next(5)) is not None and event.kind != "shutdown":
                events.append(event.to_json().decode())
        assert any("Succeeded" in event for event in events)
        assert sum("broken" in t for t in hook.titles()) == 1, hook.titles()
        events_seen = json.dumps(events)
    finally:
        process.stop()
    for path in [log_file, *tmp_path.glob("journal.sqlite3*")]:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in status and SECRET not in events_seen
    sent = _ledger(tmp_path / "journal.sqlite3", 1)
    assert [e["outcome"] for e in sent if e["kind"] == "failed"] == ["sent"]
    assert all("****" in e["destination"] for e in sent)


def test_notify_test_sends_a_sample(hooks: Any) -> None:
    hook = hooks()
    done = subprocess.run([sys.executable, "-m", "trail", "notify-test",
                           hook.url(secret=True)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.returncode == 0, done.stderr
    assert "sent a test notice to json://trail:****@" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert "a test notice" in hook.titles()[0]
    dead = subprocess.run([sys.executable, "-m", "trail", "notify-test",
                           f"json://u:{SECRET}@127.0.0.1:{free_port()}/x"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert dead.returncode == 2
    assert "could not be sent" in dead.stderr and SECRET not in dead.stdout + dead.stderr


def test_trail_run_sends_the_finish_before_it_exits(tmp_path: Path, hooks: Any) -> None:
    hook = hooks()
    book = tmp_path / "fails.py"
    book.write_text("from trail import Step\n\n"
                    "def broken(trail_env, context):\n    raise RuntimeError('down')\n\n"
                    "trail = Step(broken, pause_on_fail=False)\n")
    done = subprocess.run(
        [sys.executable, "-m", "trail", "run", str(book), "--plain", "--journal",
         str(tmp_path / "j.sqlite3"), "--socket", str(tmp_path / "s.sock")],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]),
             "TRAIL_NOTIFY": f"failed,finished={hook.url()}"},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert any("broken failed" in t for t in hook.titles())
    assert any("finished with failures" in t for t in hook.titles())


def test_a_config_file_others_can_read_is_warned_about(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from trail.layer2.notify.destinations import from_config_file

    path = tmp_path / "notify.txt"
    path.write_text(f"failed, dba = json://u:{SECRET}@127.0.0.1:9/x\n")
    path.chmod(0o644)
    found = from_config_file(path)
    assert [(d.kinds, d.names) for d in found] == [(frozenset({"failed"}), frozenset({"dba"}))]
    assert "readable by other users" in caplog.text
    assert SECRET not in caplog.text and SECRET not in found[0].where
    caplog.clear()
    path.chmod(0o600)
    from_config_file(path)
    assert "readable by other users" not in caplog.text
