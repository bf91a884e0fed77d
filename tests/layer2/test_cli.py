"""The `trail` command, run as a real process against real servers; the live view and the
REPL in a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from tests.support import Tmux, names, states, wait_states, wait_until
from trail import Instruction, Step

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TRAIL = [sys.executable, "-m", "trail"]
FAILOVER = str(ROOT / "examples" / "failover.py")


def trail(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRAIL, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, stdin=subprocess.DEVNULL)


def three_steps():
    a = Step(lambda e, c: "A", name="alpha", tier="db")
    b = Step(lambda e, c: e.input("ok?"), name="beta", tier="web")
    c = Step(lambda e, c: "C", name="gamma", tier="web")
    return a >> b >> c


def test_control_commands_dry_run_then_yes(serve):
    client = serve(three_steps())
    s = client.socket_file
    result = trail("pause", "--socket", s, "tier=web")
    assert result.returncode == 0, result.stderr
    assert "DRY RUN" in result.stdout and "# 1 - beta" in result.stdout
    assert states(client)["beta"] == "Ready"  # nothing changed
    result = trail("pause", "--socket", s, "tier=web", "--yes", "--json")
    assert json.loads(result.stdout) == {"call": "pause", "dry_run": False, "steps": [
        {"n": 1, "name": "beta"}, {"n": 2, "name": "gamma"}]}
    assert trail("start", "--socket", s, "--yes").returncode == 0
    wait_states(client, {"alpha": "Succeeded", "beta": "Paused"})
    result = trail("next", "--socket", s, "--yes", "--json")
    assert names(json.loads(result.stdout)["steps"]) == ["beta"]
    wait_until(client.steps_waiting_for_user_input, "beta's question")
    result = trail("send", "fine", "--socket", s, "n=1", "--yes")
    assert "send affected 1 step(s)" in result.stdout, result.stderr
    wait_states(client, {"beta": "Succeeded", "gamma": "Paused"})
    assert trail("skip", "--socket", s, "name=gamma", "--yes").returncode == 0
    wait_states(client, {"gamma": "Skipped"})
    rows = json.loads(trail("status", "--socket", s, "--json").stdout)
    assert [(r["Name"], r["State"], r["Return value"]) for r in rows] == [
        ("alpha", "Succeeded", "A"), ("beta", "Succeeded", "fine"), ("gamma", "Skipped", None)]
    text = trail("status", "--socket", s, "tier=web").stdout
    assert "beta" in text and "gamma" in text and "alpha" not in text
    page = json.loads(trail("status", "--socket", s, "--offset", "1", "--limit", "1",
                            "--json").stdout)
    assert [row["Name"] for row in page] == ["beta"]
    listed = json.loads(trail("list", "--socket", s, "--json").stdout)
    assert listed[0] == {"name": "alpha", "tier": "db", "n": 0}
    assert "would stop the server" in trail("shutdown", "--socket", s).stdout
    assert trail("shutdown", "--socket", s, "--yes").returncode == 0
    assert client.server.join(10)


def test_bad_input_is_one_clear_line_and_a_nonzero_exit(serve, tmp_path):
    client = serve(three_steps())
    s = client.socket_file
    cases = [
        (["pause", "--socket", s, "colour=blue"], "no step has a tag 'colour'"),
        (["pause", "--socket", s, "name=delta"], "no step has name=delta"),
        (["pause", "--socket", s, "oops"], "is not TAG=VALUE"),
        (["status", "--socket", str(tmp_path / "none.sock")], "the socket file does not exist"),
        (["status", "--socket", s, "--limit", "-1"],
         "argument 'limit' must be a whole number >= 0, not -1"),
    ]
    stale = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale))
    dead.close()
    cases.append((["--timeout", "0.5", "status", "--socket", str(stale)], "stale"))
    bad = tmp_path / "bad.py"
    bad.write_text("from trail import Step\ntrail = (\n")
    cases.append((["run", str(bad)], "bad.py, line 2"))
    cyclic = tmp_path / "cyclic.py"
    cyclic.write_text("from trail import Step\na = Step(print, name='a')\n"
                      "b = Step(print, name='b')\ntrail = [(a, b), (b, a)]\n")
    cases.append((["run", str(cyclic)], "the trail has a cycle: a -> b -> a"))
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    cases.append((["run", str(empty)], "defines no `trail`"))
    cases.append((["dot", str(empty), "-o", str(tmp_path / "x.svg")], "defines no `trail`"))
    for args, message in cases:
        result = trail(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    debug = trail("--debug", "pause", "--socket", s, "colour=blue")
    assert debug.returncode != 0


def test_trail_ls_lists_running_trails(serve):
    client = serve(three_steps(), name="ls_me")
    rows = json.loads(trail("ls", "--json").stdout)
    mine = [r for r in rows if r["socket"] == client.socket_file]
    assert mine and mine[0]["live"] and mine[0]["name"] == "ls_me" and mine[0]["steps"] == 3
    assert client.socket_file in trail("ls").stdout


def test_trail_run_without_a_terminal(tmp_path):
    result = trail("run", FAILOVER, "--answer", "choose_replica=db3", "--answer",
                   "fence_old_primary=true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "choose_replica           ? Promote which replica? db2 / db3" in result.stdout
    assert "db3 will be the new primary" in result.stdout
    assert "finished: 8 Succeeded" in result.stdout
    failing = tmp_path / "failing.py"
    failing.write_text("from trail import Step\n"
                       "def boom(e, c):\n    raise RuntimeError('no disk')\n"
                       "trail = Step(boom, pause_on_fail=False) >> Step(print, name='after')\n")
    result = trail("run", str(failing))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "boom                     Failed  (RuntimeError: no disk)" in result.stdout


def test_trail_dot(serve, tmp_path):
    out = tmp_path / "failover.svg"
    result = trail("dot", FAILOVER, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "<svg" in out.read_text() and "5: promote" in out.read_text()
    client = serve(three_steps())
    dot_file = tmp_path / "live.dot"
    assert trail("dot", "--socket", client.socket_file, "-o", str(dot_file)).returncode == 0
    assert 'fillcolor=white' in dot_file.read_text() or "fillcolor" in dot_file.read_text()


def test_every_command_has_help_with_an_example():
    from click.testing import CliRunner

    from trail.layer2.cli import main

    assert trail("--help").returncode == 0  # the installed command itself answers
    runner = CliRunner()
    main.list_commands(click.Context(main))  # loads the commands loaded on demand
    for name, command in main.commands.items():  # each command's help, in this process
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Example" in result.output, f"{name} --help has no example"
        if isinstance(command, click.Group):
            for sub in command.commands:
                result = runner.invoke(main, [name, sub, "--help"])
                assert result.exit_code == 0, (name, sub, result.output)


def test_live_view_answers_a_prompt_and_pauses_a_step(tmp_path):
    socket_file = str(tmp_path / "live.sock")
    tmux = Tmux(f"{' '.join(TRAIL)} run {FAILOVER} --socket {socket_file}",
                env={"PYTHONPATH": str(ROOT)})
    try:
        tmux.wait_for("? Promote which replica? db2 / db3")
        assert "choose_replica" in tmux.screen() and "Running" in tmux.screen()
        tmux.keys(":")
        tmux.wait_for("trail> ")
        tmux.keys("pause verify", "Enter")
        tmux.wait_for("pause: 7 verify")
        tmux.keys("a")
        tmux.wait_for("choose_replica: Promote which replica?")
        tmux.keys("db2", "Enter")
        tmux.wait_for("db2 will be the new primary")
        tmux.wait_for("? Make sure db1 cannot take writes")
        tmux.keys("a")
        tmux.wait_for("fence_old_primary: Make sure db1")
        tmux.keys("yes", "Enter")
        wait_until(lambda: "Paused" in [line.split("│")[3].strip() for line in
                                        tmux.screen().splitlines()
                                        if line.count("│") > 4 and "verify" in line][:1],
                   "verify to be Paused")
        tmux.keys(":")
        tmux.wait_for("trail> ")
        tmux.keys("resume verify", "Enter")
        screen = tmux.wait_for("EXIT=")
        assert "EXIT=0" in screen and "all steps succeeded" in screen
    finally:
        tmux.close()


def test_live_view_with_thread_steps_that_print(tmp_path):
    """Thread steps share the live view's process: what they print goes to the log, and
    the live view stays a live view (its terminal still answers as a terminal)."""
    book = tmp_path / "chatty.py"
    book.write_text(
        "from trail import Instruction, Step\n"
        "def chatty(trail_env, context):\n"
        "    print('NOISE-FROM-A-STEP')\n"
        "    return 'said it'\n"
        "executor = 'thread'\n"
        "trail = Step(chatty) >> Step(Instruction('confirm', 'All good? Reply yes'),\n"
        "                             name='confirm')\n")
    socket_file = str(tmp_path / "chatty.sock")
    tmux = Tmux(f"{' '.join(TRAIL)} run {book} --socket {socket_file}",
                env={"PYTHONPATH": str(ROOT)})
    try:
        tmux.wait_for("? All good? Reply yes")
        screen = tmux.screen()
        assert "NOISE-FROM-A-STEP" not in screen
        assert any(line.count("│") > 4 and "chatty" in line for line in screen.splitlines())
        tmux.keys("a")
        tmux.wait_for("confirm: All good?")
        tmux.keys("yes", "Enter")
        screen = tmux.wait_for("EXIT=")
        assert "EXIT=0" in screen and "NOISE-FROM-A-STEP" not in screen
        assert "NOISE-FROM-A-STEP" in Path(socket_file + ".log").read_text()
    finally:
        tmux.close()


def test_trail_watch_shows_a_change_within_a_second(serve):
    client = serve(Step(Instruction("wait_here", "Press on"), name="wait_here") >>
                   Step(lambda e, c: 1, name="next_one"))
    tmux = Tmux(f"{' '.join(TRAIL)} watch --socket {client.socket_file}",
                env={"PYTHONPATH": str(ROOT)})
    try:
        tmux.wait_for("wait_here")
        client.start()
        tmux.wait_for("? Press on", timeout=5)
        client.send_message_to_steps(True, dry_run=False)
        started = time.monotonic()
        wait_until(lambda: "2 Succeeded" in tmux.screen(), "the view to show both done",
                   timeout=5)
        assert time.monotonic() - started < 1.0 + 0.5  # the event, not a poll, drove it
    finally:
        tmux.close()


def test_trail_attach_is_a_repl_bound_to_the_trail(serve):
    client = serve(three_steps())
    tmux = Tmux(f"{' '.join(TRAIL)} attach --socket {client.socket_file}",
                env={"PYTHONPATH": str(ROOT), "HOME": "/tmp"})
    try:
        tmux.wait_for(">>>")
        tmux.keys('pause(name="gamma", dry_run=False)', "Enter")
        tmux.wait_for("pause affected 1 step(s)")
        assert states(client)["gamma"] == "To Pause"
        tmux.keys("status()", "Enter")
        tmux.wait_for("To Pause")
        tmux.keys("client.info()['steps']", "Enter")
        tmux.wait_for("\n3\n")
        tmux.keys("names.ga", "Tab")
        tmux.wait_for("names.gamma")
    finally:
        tmux.close()


@pytest.mark.parametrize("plain", [True])
def test_ctrl_c_without_a_terminal_stops_the_trail(tmp_path, plain):
    book = tmp_path / "long.py"
    book.write_text("import time\nfrom trail import Step\n"
                    "def nap(e, c):\n    e.output('napping')\n    time.sleep(60)\n"
                    "trail = Step(nap) >> Step(print, name='after')\n")
    process = subprocess.Popen([*TRAIL, "run", str(book), "--plain"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "napping" in line:
            break
    process.send_signal(2)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 3, out + err
    assert "stopped:" in out and "Blocked" in out
