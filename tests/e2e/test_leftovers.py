"""Shutdown answers what arrives during its grace period; crashed servers' socket files are
pruned; another user's directory in a shared runtime directory does not stop a run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

from tests.support import require_root, wait_until
from trail import SocketInUseError, Step, TrailClient, TrailServer
from trail.layer1.sockets import socket_dir


def stubborn(trail_env, context):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)


def test_requests_during_shutdown_get_an_answer(serve, tmp_path):
    ready = tmp_path / "ignoring"

    def stubborn_ready(trail_env, context):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ready.touch()
        time.sleep(600)

    client = serve(Step(stubborn_ready, name="stubborn", kill_grace=10))
    client.start()
    wait_until(ready.exists, "the step to ignore SIGTERM")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{client.socket_file}")
    client.shutdown(dry_run=False)
    time.sleep(0.3)  # inside the step's grace period: the server waits for it to end
    asked = time.monotonic()
    sock.send_multipart([b"", json.dumps({"call": "info", "id": 5}).encode()])
    assert sock.poll(10000), "no answer during shutdown"
    reply = json.loads(sock.recv_multipart()[-1])
    assert time.monotonic() - asked < 8, "answered only after the grace period"
    assert reply["id"] == 5 and reply["ok"] is False
    assert reply["error"]["type"] == "ServerShuttingDownError"
    # A second shutdown meanwhile is no error: the server is doing what it asks.
    assert client.shutdown(dry_run=False) is True
    sock.close()


def stale_socket(path: Path) -> None:
    raw = socket.socket(socket.AF_UNIX)
    raw.bind(str(path))
    raw.listen()
    raw.close()  # the file stays: as a server killed with SIGKILL leaves it
    old = time.time() - 3 * 24 * 3600
    os.utime(path, (old, old))


def short_dir(request: pytest.FixtureRequest) -> Path:
    """A private directory with a short path (tmp_path under pytest-xdist can push a socket
    path past the 107-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def test_a_starting_server_prunes_what_crashed_servers_left(request, monkeypatch):
    runtime = short_dir(request) / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    where = socket_dir()
    stale_socket(where / "old-1-abc.sock")
    stale_socket(where / "old-1-abc.sock.events")
    (where / "old-1-abc.sock.log").write_text("what the crashed server said\n")
    old = time.time() - 3 * 24 * 3600
    os.utime(where / "old-1-abc.sock.log", (old, old))
    (where / "recent-2-def.sock.log").write_text("a crash from minutes ago\n")
    live = TrailServer(Step(stubborn), name="live", journal=False)
    live.serve(threaded=True)
    try:
        left = sorted(p.name for p in where.iterdir())
        assert "old-1-abc.sock" not in left and "old-1-abc.sock.events" not in left
        assert "old-1-abc.sock.log" not in left
        assert "recent-2-def.sock.log" in left  # kept for a while for a post-mortem
        assert Path(live.socket_file).name in left
        # A second server leaves the first one's live socket alone.
        other = TrailServer(Step(stubborn, name="other"), name="other", journal=False)
        other.serve(threaded=True)
        assert Path(live.socket_file).exists()
        TrailClient(other.socket_file, timeout=10).shutdown(dry_run=False)
        assert other.join(30)
    finally:
        TrailClient(live.socket_file, timeout=10).shutdown(dry_run=False)
        assert live.join(30)


def test_another_users_trail_dir_in_a_shared_runtime_dir_does_not_stop_root(request):
    require_root()
    runtime = Path(tempfile.mkdtemp(prefix="shared-runtime-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(runtime, ignore_errors=True))
    runtime.chmod(0o1777)
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                    "mkdir", "-m", "0777", str(runtime / "trail")], check=True)
    assert (runtime / "trail").stat().st_uid != 0
    tmp_path = short_dir(request)
    book = tmp_path / "book.py"
    book.write_text("from trail import Step\n\ndef hello(trail_env, context):\n"
                    "    return 'hi'\n\ntrail = Step(hello)\n")
    root = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "XDG_RUNTIME_DIR": str(runtime),
           "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "trail", "run", str(book), "--plain",
                             "--journal", str(tmp_path / "j.sqlite3")],
                            env=env, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert f"serving at {tmp_path}/trail-0/" in result.stdout
    assert not any((runtime / "trail").iterdir())


def test_a_socket_held_by_another_process_names_it(tmp_path):
    path = tmp_path / "held.sock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys, time\n"
         "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
         "print('ready', flush=True); time.sleep(600)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(SocketInUseError, match=f"held by pid {holder.pid} "):
            TrailServer(Step(stubborn), socket_file=str(path), journal=False)
    finally:
        holder.kill()
        holder.wait(10)
