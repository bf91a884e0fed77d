"""Under faults and load: who may talk to a server, vanishing peers, many clients at once,
no orphans."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import zmq

from tests.support import pid_alive, wait_pids, wait_states, wait_until
from trail import (
    ShellCommand,
    Step,
    TrailClient,
    TrailClientError,
    TrailConnectionError,
    TrailServer,
)
from trail.errors import ProtocolError

ROOT = Path(__file__).parents[2]


def test_another_user_cannot_talk_to_the_server(serve):
    if os.getuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this test runs a client as another user and needs root")
        pytest.skip("needs root to run a client as another user")
    client = serve(Step(lambda e, c: 1, name="mine"))
    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from trail import TrailClient, TrailConnectionError\n"
        "os.setgid(65534); os.setuid(65534)  # now: the user nobody\n"
        "try:\n"
        f"    TrailClient({client.socket_file!r}, timeout=2).status()\n"
        "except TrailConnectionError as exc:\n"
        "    print('refused:', exc)\n"
        "else:\n"
        "    print('ANSWERED')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert "refused:" in result.stdout, result.stdout + result.stderr
    assert "Permission denied" in result.stdout or "does not exist" in result.stdout
    assert client.status()[0]["State"] == "Ready"  # its owner still gets in


def test_a_server_that_vanishes_mid_call(tmp_path):
    path = str(tmp_path / "dies.sock")
    mute = zmq.Context.instance().socket(zmq.ROUTER)
    mute.setsockopt(zmq.LINGER, 0)
    mute.bind(f"ipc://{path}")
    errors: list[Exception] = []

    def call() -> None:
        try:
            TrailClient(path, timeout=3).status()
        except TrailConnectionError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert mute.poll(5000)  # the request arrived; the server dies without answering
    mute.close(0)
    os.unlink(path)
    caller.join(10)
    assert errors and "the socket file is gone" in str(errors[0])


def test_a_server_of_another_protocol_version(tmp_path):
    path = str(tmp_path / "v2.sock")
    other = zmq.Context.instance().socket(zmq.ROUTER)
    other.setsockopt(zmq.LINGER, 0)
    other.bind(f"ipc://{path}")

    def answer() -> None:
        frames = other.recv_multipart()
        request = json.loads(frames[-1])
        other.send_multipart([*frames[:-1], json.dumps(
            {"v": 2, "id": request["id"], "ok": True, "result": []}).encode()])

    responder = threading.Thread(target=answer)
    responder.start()
    try:
        with pytest.raises(ProtocolError, match="the server speaks trail protocol 2"):
            TrailClient(path, timeout=5).status()
    finally:
        responder.join(10)
        other.close(0)


def test_a_client_of_another_protocol_version_gets_a_clear_error(serve):
    client = serve(Step(lambda e, c: 1, name="x"))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{client.socket_file}")
    sock.send_multipart([b"", json.dumps({"v": 0, "id": 1, "call": "status"}).encode()])
    assert sock.poll(10000)
    reply = json.loads(sock.recv_multipart()[-1])
    sock.close(0)
    assert reply["error"]["message"] == "this server speaks trail protocol 1, the request is 0"


LOAD_STEPS = int(os.environ.get("TRAIL_LOAD_STEPS", "200"))
LOAD_CLIENTS = int(os.environ.get("TRAIL_LOAD_CLIENTS", "8"))


def counted(log: Path, name: str):
    def action(trail_env, context):
        with open(log, "a") as out:
            out.write(name + "\n")
        return name

    return action


def test_many_clients_at_once_while_a_trail_runs(tmp_path):
    log = tmp_path / "ran.log"
    steps = [Step(counted(log, f"s{i}"), name=f"s{i}") for i in range(LOAD_STEPS)]
    server = TrailServer(list(zip(steps, steps[1:], strict=False)), journal=tmp_path / "j")
    server.serve(threaded=True)
    stop = threading.Event()
    failures: list[BaseException] = []
    latencies: list[float] = []

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        client = TrailClient(server.socket_file, timeout=30)
        try:
            while not stop.is_set():
                name = f"s{rng.randrange(LOAD_STEPS)}"
                started = time.perf_counter()
                client.status(name=name)
                client.pause(dry_run=False, name=name)
                client.resume(dry_run=False, name=name)
                latencies.append((time.perf_counter() - started) / 3)
        except (TrailConnectionError, TrailClientError) as exc:
            failures.append(exc)

    hammers = [threading.Thread(target=hammer, args=(i,)) for i in range(LOAD_CLIENTS)]
    for thread in hammers:
        thread.start()
    client = TrailClient(server.socket_file, timeout=30)
    try:
        client.start()
        wait_until(lambda: client.info()["counts"].get("Succeeded", 0) > LOAD_STEPS // 2,
                   "half the trail to run under load", timeout=120)
    finally:
        stop.set()
        for thread in hammers:
            thread.join(60)
    try:
        client.resume(dry_run=False)  # whatever a client left paused at the stop
        wait_until(lambda: client.info()["finished"], "the trail to finish", timeout=120)
        assert {row["State"] for row in client.status(fields=["State"])} == {"Succeeded"}
    finally:
        client.shutdown(dry_run=False)
        server.join(30)
    assert not failures, failures[:3]
    assert len(latencies) > 100
    ran = Counter(log.read_text().split())
    assert sorted(ran) == sorted(f"s{i}" for i in range(LOAD_STEPS))
    assert set(ran.values()) == {1}, "a step ran twice, or never"


ORPHAN_STEPS = int(os.environ.get("TRAIL_ORPHAN_STEPS", "20"))


def test_no_orphans_after_interrupts_and_timeouts(serve, tmp_path):
    steps = []
    for i in range(ORPHAN_STEPS):
        command = f"echo $$ > {tmp_path}/{i}.pid; sh -c 'sleep 60' & sleep 60"
        options = {"timeout": 3.0, "kill_grace": 0.5} if i % 2 else {}
        steps.append(Step(ShellCommand(f"c{i}", command, shell=True), name=f"c{i}",
                          **options))
    client = serve(steps)
    client.start()
    files = [tmp_path / f"{i}.pid" for i in range(ORPHAN_STEPS)]
    shells = [pid for f in files for pid in wait_pids(f, "every command to start")]
    for i in range(0, ORPHAN_STEPS, 2):  # the even ones are interrupted, the odd time out
        client.interrupt(dry_run=False, name=f"c{i}")
    wait_states(client, {f"c{i}": ("Paused due to failure" if i % 2 else "Interrupted")
                         for i in range(ORPHAN_STEPS)})
    # Every process of every group: the shells, their sleeps, the inner shells' sleeps.

    def leftovers() -> list[int]:
        found = []
        for pgid in shells:
            out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
            found += [int(p) for p in out.stdout.split()]
        return [p for p in found if pid_alive(p)]

    wait_until(lambda: not leftovers(), "no process of any command to be left", timeout=15)
