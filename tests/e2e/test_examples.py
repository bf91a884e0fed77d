"""Every example runbook runs to the end on a real server, its prompts answered by a client."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
    assert values["check_disk"]["exit_code"] == 0


@pytest.mark.parametrize("window", ["0", "1"])
def test_failover_runbook(window, monkeypatch):
    monkeypatch.setenv("MAINTENANCE_WINDOW", window)
    rows = drive(EXAMPLES / "failover.py", {"choose_replica": "db2"})
    result = states(rows)
    assert result.pop("post_notice") == ("Skipped" if window == "1" else "Succeeded")
    assert set(result.values()) == {"Succeeded"}
    values = {row["Name"]: row["Return value"] for row in rows}
    assert values["verify"] == "fail-over to db2 complete"
    assert values["repoint_dns"]["stdout"] == ["db.example.internal -> db2"]
    assert values["check_lag"]["stdout"] == ["db2: lag 0 s", "db3: lag 4 s"]


def test_failover_refuses_a_host_that_is_not_a_replica():
    result = drive_until_paused(EXAMPLES / "failover.py", {"choose_replica": "db9"})
    assert result["choose_replica"] == "Paused due to failure"
    assert result["promote"] == "Waiting"


def test_separate_client_and_server(tmp_path):
    socket_file = tmp_path / "demo.sock"
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "separate_client_and_server" / "server.py"),
         str(socket_file)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == str(socket_file)
        client = subprocess.run(
            [sys.executable, str(EXAMPLES / "separate_client_and_server" / "client.py"),
             str(socket_file)], capture_output=True, text=True, timeout=60, env=ENV)
        assert client.returncode == 0, client.stderr
        assert "ask_for_go asks 'go?'; answering yes" in client.stdout
        assert "1 ask_for_go: Succeeded -> 'yes'" in client.stdout
        assert server.wait(30) == 0
        assert not socket_file.exists()
    finally:
        server.kill()


def test_quickstart():
    result = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py"), "--yes"],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "all steps succeeded" in result.stdout
    assert "2 promote          | promoting db2" in result.stdout
