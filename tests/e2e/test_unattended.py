"""Unattended runs speak and are never stranded: `trail run --plain` as CI or cron runs it.

A paused failure prints its error and the exact commands to rerun or skip it; --fail-fast
ends the run at the first failure; a blocked step keeps the run open (and says so) until
an operator unblocks it; SIGTERM and SIGHUP stop `trail run` and a TrailServer script as
`stop` does; one end state gives one exit code, the first time and after --resume."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket as sockets
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import DEADLINE, wait_until
from trail.layer1.sockets import socket_dir

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TRAIL = [sys.executable, "-m", "trail"]


class Plain:
    """`trail run BOOK --plain` as a process whose output lines are collected as they come."""

    def __init__(self, tmp: Path, book: Path, *args: str, own_socket: bool = True) -> None:
        self.socket = str(tmp / "run.sock")
        self.journal = str(tmp / "journal.sqlite3")
        where = ["--socket", self.socket] if own_socket else []
        self.process = subprocess.Popen(
            [*TRAIL, "run", str(book), "--plain", *where, "--journal",
             self.journal, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=ENV, stdin=subprocess.DEVNULL, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def line_with(self, text: str) -> str:
        found = wait_until(lambda: next((x for x in self.lines if text in x), None),
                           f"a line with {text!r}")
        assert isinstance(found, str)
        return found

    def wait(self) -> int:
        code = self.process.wait(DEADLINE)
        self._reader.join(DEADLINE)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRAIL, *args], capture_output=True, text=True, timeout=60, env=ENV,
                          stdin=subprocess.DEVNULL)


def outcome(journal: str) -> str:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT outcome FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    book = tmp_path / "rolling.py"
    book.write_text("from trail import Step\n"
                    "def drain_lb(e, c):\n    raise RuntimeError('lb1 did not drain')\n"
                    "def restart(e, c):\n    return 'restarted'\n"
                    "trail = Step(drain_lb, name='drain_lb') >> Step(restart, name='restart')\n")
    return book


def test_a_paused_failure_prints_its_error_and_how_to_rerun_or_skip_it(tmp_path, failing):
    run = Plain(tmp_path, failing)
    try:
        paused = run.line_with("Paused due to failure")
        assert "drain_lb" in paused and "RuntimeError: lb1 did not drain" in paused
        hint = run.line_with("waits for you")
        commands = re.findall(r"(trail (?:rerun|skip) --socket \S+ n=0 --yes)", hint)
        assert [c.split()[1] for c in commands] == ["rerun", "skip"], hint
        assert run.process.poll() is None  # the run stays open for the operator
        skip = cli(*shlex.split(commands[1])[1:])  # the exact command it printed
        assert skip.returncode == 0, skip.stdout + skip.stderr
        assert run.wait() == 0, run.output
        assert "finished: 1 Skipped, 1 Succeeded" in run.output or \
            "finished: 1 Succeeded, 1 Skipped" in run.output, run.output
    finally:
        run.kill()


def test_fail_fast_ends_the_run_at_the_first_failure(tmp_path, failing):
    run = Plain(tmp_path, failing, "--fail-fast")
    try:
        assert run.wait() == 1, run.output
        assert "--fail-fast: step drain_lb failed; stopping the trail" in run.output
        assert "exit 1" in run.output
        assert not os.path.exists(run.socket)
        assert outcome(run.journal) == "stopped"
    finally:
        run.kill()


def test_a_blocked_step_keeps_the_run_open_and_says_so(tmp_path):
    book = tmp_path / "notify.py"
    book.write_text("from trail import Step\n"
                    "def ok(e, c):\n    return 'ok'\n"
                    "a, b, c = (Step(ok, name=x) for x in ('check', 'notify', 'promote'))\n"
                    "trail = a >> b >> c\n")
    run = Plain(tmp_path, book, "--no-start")
    try:
        run.line_with("promote")
        assert cli("block", "--socket", run.socket, "name=notify", "--yes").returncode == 0
        assert cli("start", "--socket", run.socket, "--yes").returncode == 0
        said = run.line_with("Blocked (1 notify)")
        assert "waiting for you, the run stays open: 1 Blocked (1 notify): trail unblock " \
            "--socket" in said
        assert run.process.poll() is None, run.output
        assert cli("unblock", "--socket", run.socket, "name=notify", "--yes").returncode == 0
        assert run.wait() == 0, run.output
        assert "finished: 3 Succeeded" in run.output
    finally:
        run.kill()


@pytest.fixture
def napping(tmp_path: Path) -> Path:
    book = tmp_path / "napping.py"
    pid_file = tmp_path / "sleep.pid"
    book.write_text("import subprocess, time\nfrom trail import Step\n"
                    "def nap(e, c):\n"
                    "    child = subprocess.Popen(['sleep', '300'])\n"
                    f"    with open({str(pid_file)!r}, 'w') as f:\n"
                    "        f.write(str(child.pid))\n"
                    "    e.output('napping')\n    child.wait()\n"
                    "trail = Step(nap, name='nap') >> Step(print, name='after')\n")
    return book


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_trail_run_as_stop_does(tmp_path, napping, signum):
    run = Plain(tmp_path, napping)
    try:
        run.line_with("| napping")
        sleeper = int((tmp_path / "sleep.pid").read_text())
        run.process.send_signal(signum)
        assert run.wait() == 3, run.output
        assert "stopped:" in run.output
        assert not os.path.exists(run.socket)
        assert outcome(run.journal) == "stopped"
        wait_until(lambda: gone(sleeper), "the step's command to be killed")
    finally:
        run.kill()
    # Taken up again: the stopped run does not "finish" at once, it waits for the operator;
    # stopped again, it ends the same way, with the same code.
    again = Plain(tmp_path, napping, "--resume")
    try:
        again.line_with("waiting for you, the run stays open")
        assert again.process.poll() is None
        again.process.send_signal(signal.SIGTERM)
        assert again.wait() == 3, again.output
        assert outcome(again.journal) == "stopped"
    finally:
        again.kill()


def test_sigterm_stops_a_trail_server_script(tmp_path):
    script = tmp_path / "serve.py"
    socket_file = tmp_path / "script.sock"
    journal = tmp_path / "journal.sqlite3"
    marker = tmp_path / "running"
    script.write_text(
        "import time\nfrom trail import Step, TrailServer\n"
        "def nap(e, c):\n"
        f"    open({str(marker)!r}, 'w').close()\n    time.sleep(300)\n"
        f"server = TrailServer(Step(nap, name='nap'), socket_file={str(socket_file)!r},\n"
        f"                     journal={str(journal)!r})\n"
        "from trail import TrailClient\n"
        "import threading\n"
        f"threading.Timer(0.2, lambda: TrailClient({str(socket_file)!r}).start()).start()\n"
        "server.serve()\n"
        "print('served')\n")
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_until(marker.exists, "the step to run")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=DEADLINE)
        assert process.returncode == 0, out + err
        assert "served" in out
        assert "Traceback" not in err, err
        assert not socket_file.exists()
        assert outcome(str(journal)) == "stopped"
    finally:
        if process.poll() is None:
            process.kill()


def test_a_block_names_the_steps_it_strands(serve):
    from trail import Step

    a, b, c, d = (Step(lambda e, ctx: None, name=x) for x in ("check", "notify", "post",
                                                             "promote"))
    client = serve([(a, b), (b, c), (c, d)])
    dry = cli("block", "--socket", client.socket_file, "name=notify")
    assert "2 step(s) below would wait until these are unblocked" in dry.stdout, dry.stdout
    assert "2 post, 3 promote" in dry.stdout
    real = cli("block", "--socket", client.socket_file, "name=notify", "--yes")
    assert "2 step(s) below wait until these are unblocked" in real.stdout, real.stdout
    paused = cli("pause", "--socket", client.socket_file, "name=check")
    assert "below would wait until these are resumed" in paused.stdout, paused.stdout
    assert "1 notify" in paused.stdout


def test_run_identity_two_runbooks_of_one_name_never_share_a_run(tmp_path):
    # Two deploy.py in different folders: one crashes, the other is not refused (nor taken
    # up): it starts its own run.
    books = []
    for folder, step in (("a", "check"), ("b", "other")):
        (tmp_path / folder).mkdir()
        book = tmp_path / folder / "deploy.py"
        book.write_text("from trail import Step\n"
                        "def ask(e, c):\n    return e.input('go?')\n"
                        f"trail = Step(ask, name={step!r})\n")
        books.append(book)
    journal = str(tmp_path / "journal.sqlite3")
    first = subprocess.Popen([*TRAIL, "run", str(books[0]), "--plain", "--journal", journal,
                              "--socket", str(tmp_path / "a.sock")], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        wait_until(lambda: (tmp_path / "a.sock").exists(), "the first run to serve")
        # The same runbook again, without a terminal: refused, saying how to watch it.
        second = cli("run", str(books[0]), "--plain", "--journal", journal)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "is already running: run 1" in second.stderr
        assert "--allow-concurrent" in second.stderr
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        other = cli("run", str(books[1]), "--plain", "--journal", journal, "--answer",
                    "other=yes")
        assert other.returncode == 0, other.stdout + other.stderr
        assert "took up" not in other.stdout
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)


def test_trail_ls_shows_run_start_and_state_and_prunes_stale_sockets(tmp_path, failing):
    run = Plain(tmp_path, failing, own_socket=False)  # in the user's socket directory
    stale = None
    try:
        run.line_with("waits for you")
        run.socket = run.line_with("serving at").split("serving at ")[1].split()[0]
        stale = str(socket_dir() / "crashed-1-abcdef.sock")
        dead = sockets.socket(sockets.AF_UNIX)
        dead.bind(stale)
        dead.close()  # a socket file nobody serves: what a kill -9 leaves
        listed = cli("ls", "--json")
        rows = json.loads(listed.stdout)
        mine = [row for row in rows if row["socket"] == run.socket]
        assert mine and mine[0]["run"] == 1 and mine[0]["state"] == "waiting for you"
        assert mine[0]["started"] > 0
        assert not os.path.exists(stale)
        assert all(row["socket"] != stale for row in rows)
    finally:
        run.process.send_signal(signal.SIGTERM)  # leaves no socket behind
        run.wait()
        run.kill()
        if stale and os.path.exists(stale):
            os.unlink(stale)


def test_steering_that_changes_nothing_says_why_and_a_dry_run_says_yes(serve):
    import time as clock

    from trail import Step

    def nap(e, c):
        clock.sleep(30)

    client = serve(Step(nap, name="drain_lb") >> Step(lambda e, c: None, name="after"))
    client.start()
    wait_until(lambda: client.status(states=["Running"]), "drain_lb to run")
    skip = cli("skip", "--socket", client.socket_file, "name=drain_lb", "--yes")
    assert "skip affected 0 step(s)" in skip.stdout
    assert "0 drain_lb is Running: interrupt it first" in skip.stdout, skip.stdout
    dry = cli("interrupt", "--socket", client.socket_file, "name=drain_lb")
    assert "(add --yes to apply)" in dry.stdout and "dry_run=False" not in dry.stdout
    client.interrupt(dry_run=False, name="drain_lb")
    unskip = cli("unskip", "--socket", client.socket_file, "name=drain_lb", "--yes")
    assert "0 drain_lb is Interrupted; unskip applies to steps that are" in unskip.stdout


def test_history_tells_a_live_run_from_a_dead_one(tmp_path, failing):
    run = Plain(tmp_path, failing)
    try:
        run.line_with("waits for you")
        listed = cli("history", "--journal", run.journal, "--json")
        assert json.loads(listed.stdout)[0]["live"] is True
        assert "running" in cli("history", "--journal", run.journal).stdout
        timeline = json.loads(cli("history", "1", "--journal", run.journal, "--states-only",
                                  "--json").stdout)["timeline"]
        causes = [entry["cause"] for entry in timeline if entry["new"] == "Paused due to failure"]
        assert causes == ["raised: RuntimeError: lb1 did not drain"]  # the failure says why
        run.kill()
        text = cli("history", "--journal", run.journal).stdout
        assert "server died" in text, text
    finally:
        run.kill()


def test_a_plain_view_that_falls_behind_says_so_and_nothing_is_lost(tmp_path):
    """A burst of output faster than a plain console prints: ZeroMQ drops events for a
    lagging reader rather than hold the server; the view says how many it missed and where
    every line is (`trail logs`), and the step's log file has them all."""
    book = tmp_path / "loud.py"
    book.write_text(
        "from trail import Step\n\n"
        "def loud(trail_env, context):\n"
        "    for i in range(5000):\n"
        "        trail_env.output(f'line {i}')\n"
        "    return 'done'\n\n"
        "trail = Step(loud)\n")
    journal = tmp_path / "journal.sqlite3"
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:
        done = subprocess.run([*TRAIL, "run", str(book), "--plain", "--journal", str(journal)],
                              stdout=sink, stderr=subprocess.PIPE, text=True, env=ENV,
                              timeout=120)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    shown = sum(1 for line in text.splitlines() if "| line " in line)
    missed = sum(int(m) for m in re.findall(r"missed (\d+) event", text))
    assert shown + missed >= 5000, (shown, missed)
    if missed:
        assert "trail logs STEP --run 1" in text
    logs = subprocess.run([*TRAIL, "logs", "loud", "--run", "1", "--journal", str(journal)],
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert logs.returncode == 0, logs.stderr
    assert [line for line in logs.stdout.splitlines() if "line " in line][-1].endswith(
        "line 4999")
    assert sum("line " in line for line in logs.stdout.splitlines()) == 5000
