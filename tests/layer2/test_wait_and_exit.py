"""A script's view of a run's end: TrailClient.wait, the finished event, a quiet exit.

``wait`` returns when the trail has finished (counts per state) and keeps waiting while a
step is blocked; the stream carries one ``finished`` event; a script with the journal on
exits without noise, a step's failure is not printed as a traceback, and a server that is
shutting down is no longer ``serving`` before its socket goes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trail import Finished, Step, TrailClient, TrailServer

ROOT = Path(__file__).parents[2]


def ok(trail_env, context):
    return "ok"


def test_wait_returns_the_counts_once_the_trail_has_finished(serve):
    client = serve([Step(ok, name="a"), Step(ok, name="b")])
    with client.subscribe() as stream:
        client.start()
        assert client.wait(timeout=20) == {"Succeeded": 2}
        events = []
        while (event := stream.next(2)) is not None:
            events.append(event)
            if isinstance(event, Finished):
                break
    finished = [e for e in events if isinstance(e, Finished)]
    assert len(finished) == 1 and finished[0].end == "succeeded"
    assert finished[0].counts == {"Succeeded": 2}
    assert client.wait(timeout=1) == {"Succeeded": 2}  # at once, when already finished
    assert client.server.wait(timeout=1) == {"Succeeded": 2}  # the same from the server


def test_wait_keeps_waiting_while_a_step_is_blocked(serve):
    a, b = Step(ok, name="a"), Step(ok, name="b")
    client = serve(a >> b)
    client.block(dry_run=False, name="b")
    client.start()
    with pytest.raises(TimeoutError, match="has not finished within 1 s"):
        client.wait(timeout=1)
    client.unblock(dry_run=False, name="b")
    assert client.wait(timeout=20) == {"Succeeded": 2}


def test_a_server_shutting_down_is_not_serving_before_its_socket_goes(tmp_path):
    server = TrailServer(Step(ok, name="a"), journal=tmp_path / "j.sqlite3")
    server.serve(threaded=True)
    assert server.serving
    assert TrailClient(server.socket_file).shutdown(dry_run=False) is True
    assert not server.serving  # at once: the shutdown was under way when the reply came
    server._stop_at_exit()  # what atexit does: a no-op now, without a word
    assert server.join(20)


def test_a_script_exits_quietly_and_a_failure_is_no_traceback(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "from trail import Step, TrailClient, TrailServer\n"
        "def boom(e, c):\n    raise RuntimeError('disk full')\n"
        f"server = TrailServer(Step(boom, name='boom'), journal={str(tmp_path / 'j.db')!r})\n"
        "server.serve(threaded=True)\n"
        "client = TrailClient(server.socket_file)\n"
        "client.start()\n"
        "import time\n"
        "while not client.status(states=['Paused due to failure']):\n    time.sleep(0.05)\n"
        "print(client.status(fields=['Return value'])[0]['Return value'])\n"
        "print(client.shutdown(dry_run=False))\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RuntimeError:", "disk", "full", "True"]
    assert result.stderr == ""  # no traceback, no "could not shut down"


GIL_BOOK = """
from trail import Step

executor = "thread"


def crunch(trail_env, context):
    return sum(range(2 * 10**8))  # C code that holds the GIL for seconds: the server's loop waits


trail = [Step(crunch, name="crunch")]
"""


def test_trail_run_outwaits_a_step_that_holds_the_gil(tmp_path):
    """A thread step in C code that keeps the GIL holds up the server's loop: `trail run`'s
    view of its own server waits for it (the server is busy, not gone), where it used to
    end the run at the client's timeout: "no trail server ... no reply within 5 s"."""
    book = tmp_path / "gil.py"
    book.write_text(GIL_BOOK)
    done = subprocess.run(
        [sys.executable, "-m", "trail", "--timeout", "0.5", "run", "--plain", str(book)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 crunch" in done.stdout and "Succeeded" in done.stdout

