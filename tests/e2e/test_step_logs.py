"""A step's full output goes to its own capped, rotated, private file, which ``trail logs``
prints for a live or past run (``-f`` follows until the step ends); a journal or socket
directory owned by another user is refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import require_root, wait_states, wait_until
from trail import Step, TrailClient, TrailServer
from trail.errors import TrailError
from trail.layer1.sockets import prune_stale

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def many(trail_env, context):
    for i in range(int(os.environ["STEP_LINES"])):
        trail_env.output(f"line {i:06d} " + "x" * 40)
    return "said"


def slow(trail_env, context):
    trail_env.output("first \x1b[2J\x1b]0;owned\x07")
    while not os.path.exists(os.environ["STEP_GO"]):
        time.sleep(0.05)
    trail_env.output("last")
    return "ok"


def trail_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trail", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_step_log_holds_all_a_step_said_beyond_the_tail(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("STEP_LINES", "3000")  # status keeps the newest 1,000
    journal = tmp_path / "state" / "j.sqlite3"
    client = serve(Step(many), journal=journal, step_log_bytes=1_000_000)
    client.start()
    wait_states(client, {"many": "Succeeded"})
    rows = client.status(fields=["Output messages"])
    kept = rows[0]["Output messages"]
    assert len(kept) < 3000 and "truncated" in kept[0]
    run_id = client.info()["run"]
    log = tmp_path / "state" / "j.sqlite3.steps" / f"run{run_id}-0.log"
    assert log.read_text().splitlines() == [f"line {i:06d} " + "x" * 40 for i in range(3000)]
    assert mode(log) == 0o600 and mode(log.parent) == 0o700
    assert not Path(f"{log}.1").exists()


def test_rotation_keeps_a_step_under_its_cap(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("STEP_LINES", "20000")  # about 1 MB
    cap = 200_000
    client = serve(Step(many), journal=tmp_path / "j.sqlite3", step_log_bytes=cap)
    client.start()
    wait_states(client, {"many": "Succeeded"})
    run_id = client.info()["run"]
    log = tmp_path / "j.sqlite3.steps" / f"run{run_id}-0.log"
    rotated = Path(f"{log}.1")
    assert rotated.exists() and mode(rotated) == 0o600 and mode(log) == 0o600
    assert log.stat().st_size + rotated.stat().st_size <= cap
    assert log.stat().st_size <= cap // 2 and rotated.stat().st_size <= cap // 2
    said = rotated.read_text().splitlines() + log.read_text().splitlines()
    assert said[-1] == "line 019999 " + "x" * 40
    numbers = [int(line.split()[1]) for line in said]
    assert numbers == list(range(numbers[0], 20000))  # the newest, none missing
    assert len(said) * 52 > cap // 2  # at least half the cap is still there

    out = trail_cli("logs", "many", "--socket", client.server.socket_file)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == said


def test_trail_logs_prints_and_follows_a_live_step_then_a_past_one(serve, tmp_path,
                                                                   monkeypatch):
    go = tmp_path / "go"
    monkeypatch.setenv("STEP_GO", str(go))
    journal = tmp_path / "j.sqlite3"
    client = serve(Step(slow), journal=journal)
    client.start()
    socket = client.server.socket_file
    run_id = client.info()["run"]
    log = tmp_path / "j.sqlite3.steps" / f"run{run_id}-0.log"
    # The file is made at the step's first line; the line reaches it within FLUSH_AFTER.
    wait_until(lambda: log.exists() and log.stat().st_size > 0, "the step's first line")

    now = trail_cli("logs", "0", "--socket", socket)
    assert now.returncode == 0, now.stderr
    assert now.stdout == "first ^[[2J^[]0;owned^G\n"  # shown, never obeyed

    follower = subprocess.Popen([sys.executable, "-m", "trail", "logs", "slow", "-f",
                                 "--socket", socket], env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert follower.poll() is None  # the step still runs: it keeps following
        go.touch()
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert out == "first ^[[2J^[]0;owned^G\nlast\n"
    wait_states(client, {"slow": "Succeeded"})

    TrailClient(socket, timeout=10).shutdown(dry_run=False)
    assert client.server.join(30)
    past = trail_cli("logs", "slow", "--run", str(run_id), "--journal", str(journal), "-f")
    assert past.returncode == 0, past.stderr
    assert past.stdout == "first ^[[2J^[]0;owned^G\nlast\n"

    wrong = trail_cli("logs", "nope", "--run", str(run_id), "--journal", str(journal))
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        "trail: error: no step named 'nope' in this trail")


def test_trail_run_writes_step_logs_and_trail_logs_reads_them(tmp_path):
    book = tmp_path / "book.py"
    book.write_text("from trail import Step\n\n"
                    "def loud(trail_env, context):\n"
                    "    for i in range(1500):\n"
                    "        trail_env.output(f'loud {i}')\n\n"
                    "trail = Step(loud)\n")
    journal = tmp_path / "j.sqlite3"
    with open(tmp_path / "run.out", "w") as out:
        run = subprocess.run([sys.executable, "-m", "trail", "run", str(book), "--plain",
                              "--journal", str(journal)], env=ENV, stdout=out,
                             stderr=subprocess.STDOUT, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, (tmp_path / "run.out").read_text()[-2000:]
    shown = trail_cli("logs", "loud", "--run", "1", "--journal", str(journal))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [f"loud {i}" for i in range(1500)]


def test_two_journals_in_one_directory_keep_their_step_logs_apart(tmp_path):
    """Each journal numbers its runs from 1: their step logs once shared ``steps/``, and
    the second journal's run 1 wrote into the first's file (``trail logs`` of the first
    showed both)."""
    for word in ("alpha", "beta"):
        book = tmp_path / f"{word}.py"
        book.write_text("from trail import Step\n\n"
                        "def say(trail_env, context):\n"
                        f"    trail_env.output('{word} said this')\n\n"
                        "trail = Step(say)\n")
        run = subprocess.run([sys.executable, "-m", "trail", "run", str(book), "--plain",
                              "--journal", str(tmp_path / f"{word}.sqlite3")], env=ENV,
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stdout + run.stderr
    for word in ("alpha", "beta"):
        shown = trail_cli("logs", "say", "--run", "1", "--journal",
                          str(tmp_path / f"{word}.sqlite3"))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines() == [f"{word} said this"]


def test_directories_of_another_user_are_refused(tmp_path):
    require_root()
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    theirs.chmod(0o777)
    os.chown(theirs, 65534, 65534)  # nobody
    book = tmp_path / "book.py"
    book.write_text("from trail import Step\n\ndef hello(trail_env, context):\n"
                    "    return 'hi'\n\ntrail = Step(hello)\n")
    refused = trail_cli("run", str(book), "--plain", "--journal", str(theirs / "j.sqlite3"))
    assert refused.returncode != 0
    assert f"the journal's directory {theirs} belongs to nobody, not to you" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not any(theirs.iterdir())

    refused = trail_cli("run", str(book), "--plain", "--journal", str(tmp_path / "j.sqlite3"),
                        "--socket", str(theirs / "t.sock"))
    assert refused.returncode != 0
    assert f"the socket's directory {theirs} belongs to nobody, not to you" in refused.stderr
    assert not any(theirs.iterdir())

    with pytest.raises(TrailError, match="the socket's directory .* belongs to nobody"):
        TrailServer(Step(many), socket_file=str(theirs / "t.sock"), journal=False)
    with pytest.raises(TrailError, match="the journal's directory .* belongs to nobody"):
        TrailServer(Step(many), journal=theirs / "j.sqlite3")
    assert not any(theirs.iterdir())


def test_step_logs_of_a_long_dead_server_without_a_journal_are_pruned(serve, tmp_path):
    client = serve(Step(slow), journal=False, socket_file=str(tmp_path / "t.sock"))
    assert client.info()["step_logs"] == str(tmp_path / "t.sock.steps")
    old = tmp_path / "gone.sock.steps"
    old.mkdir(mode=0o700)
    (old / "0.log").write_text("said\n")
    young = tmp_path / "young.sock.steps"
    young.mkdir(mode=0o700)
    for path in (old, old / "0.log"):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    removed = prune_stale(tmp_path, log_age=3600)
    assert removed == [str(old)]
    assert not old.exists() and young.exists() and (tmp_path / "t.sock.steps").exists()
