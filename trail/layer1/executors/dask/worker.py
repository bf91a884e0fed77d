"""What runs inside a Dask worker: the task that hands a step to the worker's agent.

The task never runs the step (Dask cannot stop a running task): it asks the worker's agent
(agent.py, started here at the worker's first trail task and alive as long as the worker)
to run it, and waits for its answer, which comes when the step's processes are gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from trail.layer1.executors.dask import wire
from trail.layer1.executors.process import frame, unframe

log = logging.getLogger(__name__)

AGENT_TIMEOUT = 60.0  # seconds an agent may take to start, or to answer a take-up's stop
_lock = threading.Lock()
_agent: subprocess.Popen[bytes] | None = None
_agent_socket = ""


def ensure_agent() -> str:
    """The Unix socket of this worker's agent, started if it is not running."""
    global _agent, _agent_socket
    with _lock:
        if _agent is not None and _agent.poll() is None:
            return _agent_socket
        if _agent_socket:  # the agent died without its clean-up (SIGKILL): do it for it
            _remove_socket(_agent_socket)
        # The listener is made here, so a task can connect before the agent is up.
        path = str(Path(tempfile.mkdtemp(prefix="trail-dask-")) / "agent.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)  # in a directory of mode 0700: private to the user
        listener.listen(128)
        try:
            # Its stdin is a pipe from here: end-of-file there means this worker is gone.
            _agent = subprocess.Popen(
                [sys.executable, "-m", "trail.layer1.executors.dask.agent",
                 str(listener.fileno()), path],
                stdin=subprocess.PIPE, pass_fds=(listener.fileno(),))
        finally:
            listener.close()
        # The worker's multiprocessing key, as a process it spawned would get it: a shared
        # context's proxy (trail.layer2's threadsafe_class) in a step authenticates with it.
        assert _agent.stdin is not None
        _agent.stdin.write(multiprocessing.current_process().authkey.hex().encode() + b"\n")
        _agent.stdin.flush()
        _agent_socket = path
        return path


def _remove_socket(path: str) -> None:
    """Remove an agent's socket and its private directory, whatever is left of them."""
    socket_path = Path(path)
    socket_path.unlink(missing_ok=True)
    try:
        socket_path.parent.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:  # someone put something there: leave it
        log.warning("cannot remove the trail agent's directory %s: %s", socket_path.parent,
                    exc)


async def start_agent() -> None:
    """Start this worker's agent and wait until it serves (``client.run`` runs it on the
    worker's event loop; the wait is on a thread, so the loop goes on meanwhile)."""
    await asyncio.get_running_loop().run_in_executor(None, _ask, {"stop": []}, b"",
                                                     AGENT_TIMEOUT)


async def work(endpoint: tuple[str, int], token: str, run_id: int, payload: bytes,
               capture: bool, key: str) -> str:
    """The Dask task: the worker's agent asks the trail for the go, runs the step and
    answers when it is over; how it ended, or why it did not run.

    A coroutine: the worker awaits it on its event loop, where waiting costs nothing; run
    on a thread of the worker's pool, the wait held the thread, and the worker's profiler
    looked at it every 10 ms while the step ran.
    """
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "?"
    header = {"endpoint": list(endpoint), "token": token, "run": run_id, "key": key,
              "capture": capture, "worker": worker, "pid": os.getpid()}
    answer = await _ask_async(header, payload)
    if answer is None:
        return "lost: the worker's trail agent died"
    if "refused" in answer:
        return f"refused: {answer['refused']}"
    return str(answer["end"])


def stop_steps(keys: list[str]) -> list[str]:
    """On a worker: SIGKILL the steps of these tasks still running here; the keys found."""
    if _agent is None or _agent.poll() is not None:
        return []
    answer = _ask({"stop": keys}, b"", AGENT_TIMEOUT)
    return list(answer["found"]) if answer else []


async def _ask_async(header: dict[str, Any], payload: bytes) -> dict[str, Any] | None:
    """``_ask`` on the worker's event loop."""
    if _agent is None or _agent.poll() is not None:  # starting it takes a moment: not here
        path = await asyncio.get_running_loop().run_in_executor(None, ensure_agent)
    else:
        path = _agent_socket
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(frame(json.dumps(header).encode()) + frame(payload))
        await writer.drain()
        buffer = bytearray()
        while not (frames := unframe(buffer)):
            chunk = await reader.read(1 << 16)
            if not chunk:
                return None
            buffer += chunk
    finally:
        writer.close()
    return dict(json.loads(frames[0]))


def _ask(header: dict[str, Any], payload: bytes,
         timeout: float | None = None) -> dict[str, Any] | None:
    """The agent's answer to a request; None if it died first."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(ensure_agent())
        sock.sendall(frame(json.dumps(header).encode()) + frame(payload))
        answer = wire.recv_answer(sock)
    return None if answer is None else dict(json.loads(answer))
