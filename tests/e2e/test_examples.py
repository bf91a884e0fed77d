"""Every example runbook runs to the end on a real server, its prompts answered by a client."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import Tmux, wait_states, wait_until
from trail import Prompt, TrailClient, TrailServer

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def drive(path: Path, answers: dict[str, Any], executor: str = "process") -> list[dict]:
    """Serve the example's trail, start it, answer every prompt, return the final status."""
    module = runpy.run_path(str(path))
    server = TrailServer(module["trail"], context=module.get("context"), executor=executor)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=10)
    try:
        with client.subscribe() as events:
            client.start()
            while not client.info()["finished"]:
                event = events.next(timeout=30)
                assert event is not None, f"{path.name} stalled: {client.status()}"
                if isinstance(event, Prompt):
                    reply = answers.get(event.name, True)
                    client.send_message_to_steps(reply, dry_run=False, n=event.n)
        return client.status(fields=["State", "Return value", "Output messages"])
    finally:
        client.shutdown(dry_run=False)
        server.join(30)


def states(rows: list[dict]) -> dict[str, str]:
    return {row["Name"]: row["State"] for row in rows}


def test_interactive_trail_example(executor):
    rows = drive(EXAMPLES / "interactive_trail.py", {}, executor)
    assert set(states(rows).values()) == {"Succeeded"}
    values = {row["Name"]: row["Return value"] for row in rows}
    # The pre-processor gives each step the seed (10); the post-processor keeps the results
    # in the context, in the manager, so the join sees all six before it.
    assert values["add_1"] == "made 11; made before it: []"
    assert values["add_7"].startswith("made 17; made before it: [11, ")
    assert sorted(eval(values["add_7"].split(": ", 1)[1])) == [11, 12, 13, 14, 15, 16]


def test_runbook_of_instructions():
    rows = drive(EXAMPLES / "runbook.py", {})
    assert set(states(rows).values()) == {"Succeeded"}
    assert rows[-1]["Output messages"] == ["Close OPS-1234"]


def test_runbook_at_its_prompt_in_a_terminal(tmp_path):
    """AutoTrail's way: the script serves its trail and opens a prompt, where runbook()
    shows the next instruction and runbook(n) marks n done."""
    terminal = Tmux(f"cd {ROOT} && env PYTHONPATH={ROOT} XDG_STATE_HOME={tmp_path} "
                    f"{sys.executable} examples/runbook.py")
    try:
        terminal.wait_for("Runbook Trail> ")

        def shows(text: str) -> bool:  # runbook() again until the instruction is up
            if text in terminal.screen():
                return True
            terminal.keys("runbook()", "Enter")
            return False

        wait_until(lambda: shows("Post in #ops: starting OPS-1234, disk swap on web7"),
                   "the first instruction")
        for n, next_one in [(0, "Drain web7"), (1, "Replace /dev/sdb on web7"),
                            (2, "kernel log"), (3, "Put web7 back"), (4, None)]:
            terminal.keys(f"runbook({n})", "Enter")
            terminal.wait_for(f"Instruction {n} marked done.")
            if next_one:
                wait_until(lambda text=next_one: shows(text), f"instruction {n + 1}")

        def all_done() -> bool:
            terminal.keys("print('ALL', set(r['State'] for r in runbook_trail.status()))",
                          "Enter")
            return "ALL {'Succeeded'}" in terminal.screen()

        wait_until(all_done, "every instruction done")
        wait_until(lambda: terminal.screen().rstrip().endswith("Runbook Trail>"), "the prompt")
        terminal.keys("C-d")
        assert "EXIT=0" in terminal.wait_for("EXIT=")
    finally:
        terminal.close()


def test_runbook_of_instructions_stops_when_one_is_not_done():
    module_rows = drive_until_paused(EXAMPLES / "runbook.py", {"swap_disk": False})
    assert module_rows["swap_disk"] == "Paused due to failure"
    assert module_rows["undrain"] == "Waiting"


def drive_until_paused(path: Path, answers: dict[str, Any]) -> dict[str, str]:
    module = runpy.run_path(str(path))
    server = TrailServer(module["trail"], context=module.get("context"))
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=10)
    try:
        with client.subscribe() as events:
            client.start()
            while not client.status(states=["Paused due to failure"]):
                event = events.next(timeout=30)
                assert event is not None, "stalled"
                if isinstance(event, Prompt):
                    client.send_message_to_steps(answers.get(event.name, True),
                                                 dry_run=False, n=event.n)
        return states(client.status())
    finally:
        client.shutdown(dry_run=False)
        server.join(30)


def test_elaborate_example():
    rows = drive(EXAMPLES / "elaborate_example.py", {})
    assert set(states(rows).values()) == {"Succeeded"}
    values = {row["Name"]: row["Return value"] for row in rows}
    assert values["report"] == "upgraded ['web1', 'web2', 'web3'] to 2.4.1"
    assert values["upgrade_web2"] == "web2 on 2.4.1"
    assert values["check_disk"].endswith("-- Succeeded with exit code: 0.")


def test_elaborate_example_as_a_script(tmp_path):
    """As AutoTrail's: it serves itself, prints the status until its last step is done,
    and shuts its server down; its helpers come from AutoTrail's paths (trail.helpers.*)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path),
           "COLUMNS": "160"}
    done = subprocess.run([sys.executable, str(EXAMPLES / "elaborate_example.py")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "upgraded ['web1', 'web2', 'web3'] to 2.4.1" in done.stdout
    assert "status of the trail" in done.stdout and "the example ends" in done.stdout


@pytest.mark.parametrize("window", ["0", "1"])
def test_failover_runbook(window, monkeypatch):
    monkeypatch.setenv("MAINTENANCE_WINDOW", window)
    rows = drive(EXAMPLES / "failover.py", {"choose_replica": "db2"})
    result = states(rows)
    assert result.pop("post_notice") == ("Skipped" if window == "1" else "Succeeded")
    assert set(result.values()) == {"Succeeded"}
    values = {row["Name"]: row["Return value"] for row in rows}
    assert values["verify"] == "fail-over to db2 complete"
    said = {row["Name"]: [m for m in row["Output messages"] if m.startswith("[STDOUT]")]
            for row in rows}
    assert said["repoint_dns"] == ["[STDOUT] -- db.example.internal -> db2"]
    assert said["check_lag"] == ["[STDOUT] -- db2: lag 0 s", "[STDOUT] -- db3: lag 4 s"]


def test_failover_refuses_a_host_that_is_not_a_replica():
    result = drive_until_paused(EXAMPLES / "failover.py", {"choose_replica": "db9"})
    assert result["choose_replica"] == "Paused due to failure"
    assert result["promote"] == "Waiting"


def test_separate_client_and_server(tmp_path):
    """AutoTrail's three: a server in the foreground, a command line built from the trail's
    tags (trail.helpers.cli_client), and a REPL client (in a real terminal)."""
    socket_file = tmp_path / "demo.sock"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRAIL_EXAMPLE_SOCKET": str(socket_file)}
    here = EXAMPLES / "separate_client_and_server"
    server = subprocess.Popen([sys.executable, str(here / "server.py")],
                              stdout=subprocess.PIPE, text=True, env=env)

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, str(here / "cli_client.py"), *args],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    terminal = None
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == str(socket_file)
        listed = cli("list", "--foo", "bar")
        assert "step_c" in listed and "step_f" in listed and "step_b" not in listed
        assert "DRY RUN pause would affect 2 step(s)" in cli("pause", "--foo", "bar")
        assert "pause affected 1 step(s)" in cli("pause", "--n", "6", "--submit")
        assert "start affected 6 step(s)" in cli("start")  # step_g is To Pause
        client = TrailClient(str(socket_file), timeout=10)
        wait_states(client, {"step_g": "Paused", "step_d": "Succeeded", "step_f": "Succeeded"})
        assert "# 6 - step_g" in cli("next_step", "--submit")
        wait_states(client, {"step_g": "Succeeded"})
        assert "step g saw the value 42" in cli("status", "--field", "Return value",
                                                "--name", "step_g")
        terminal = Tmux(f"cd {ROOT} && env PYTHONPATH={ROOT} TRAIL_EXAMPLE_SOCKET={socket_file} "
                        f"XDG_STATE_HOME={os.environ['XDG_STATE_HOME']} "
                        f"{sys.executable} {here / 'client.py'}")
        terminal.wait_for("Example Trail> ")
        terminal.keys("example.status(n=0, fields=['Return value'])", "Enter")
        terminal.wait_for("step a saw the value 42")
        terminal.keys("example.shutdown(dry_run=False)", "Enter")
        terminal.wait_for("The server is shutting down.")
        assert server.wait(30) == 0
        wait_until(lambda: terminal.screen().rstrip().endswith("Example Trail>"), "the prompt")
        terminal.keys("C-d")
        assert "EXIT=0" in terminal.wait_for("EXIT=")
        assert not socket_file.exists()
    finally:
        server.kill()
        if terminal is not None:
            terminal.close()


def test_quickstart():
    result = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py"), "--yes"],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "all steps succeeded" in result.stdout
    assert "2 promote          | promoting db2" in result.stdout


def test_failover_promotes_nobody_when_no_replica_was_chosen():
    # The operator skips choose_replica (or a crash lost what it learned): promote must
    # fail loudly rather than act on an empty host name.
    module = runpy.run_path(str(EXAMPLES / "failover.py"))
    server = TrailServer(module["trail"], context=module.get("context"), journal=False)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=10)
    try:
        client.skip(dry_run=False, name="choose_replica")
        with client.subscribe() as events:
            client.start()
            while not client.status(states=["Paused due to failure"]):
                event = events.next(timeout=30)
                assert event is not None, f"stalled: {client.status()}"
                if isinstance(event, Prompt):
                    client.send_message_to_steps(True, dry_run=False, n=event.n)
        row = client.status(fields=["State", "Return value"], name="promote")[0]
        assert row["State"] == "Paused due to failure"
        assert "no replica has been chosen" in str(row["Return value"])
        assert client.status(fields=["State"], name="verify")[0]["State"] == "Waiting"
    finally:
        client.shutdown(dry_run=False)
        server.join(30)
