"""What runs inside a Dask worker: the task that hands a step to the worker's agent.

The task never runs the step (Dask cannot stop a running task): it asks the worker's agent
(agent.py, started here at the worker's first trail task and alive as long as the worker)
to run it, and waits for its answer, which comes when the step's processes are gone.
"""

from __future__ import annotations

import json
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
from trail.layer1.executors.process import frame

_lock = threading.Lock()
_agent: subprocess.Popen[bytes] | None = None
_agent_socket = ""


def ensure_agent() -> str:
    """The Unix socket of this worker's agent, started if it is not running."""
    global _agent, _agent_socket
    with _lock:
        if _agent is not None and _agent.poll() is None:
            return _agent_socket
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


def work(endpoint: tuple[str, int], token: str, run_id: int, payload: bytes, capture: bool,
         key: str) -> str:
    """The Dask task: the worker's agent asks the trail for the go, runs the step and
    answers when it is over; how it ended, or why it did not run."""
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "?"
    header = {"endpoint": list(endpoint), "token": token, "run": run_id, "key": key,
              "capture": capture, "worker": worker, "pid": os.getpid()}
    answer = _ask(header, payload)
    if answer is None:
        return "lost: the worker's trail agent died"
    if "refused" in answer:
        return f"refused: {answer['refused']}"
    return str(answer["end"])


def stop_steps(keys: list[str]) -> list[str]:
    """On a worker: SIGKILL the steps of these tasks still running here; the keys found."""
    if _agent is None or _agent.poll() is not None:
        return []
    answer = _ask({"stop": keys}, b"")
    return list(answer["found"]) if answer else []


def _ask(header: dict[str, Any], payload: bytes) -> dict[str, Any] | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(ensure_agent())
        sock.sendall(frame(json.dumps(header).encode()) + frame(payload))
        answer = wire.recv_answer(sock)
    return None if answer is None else dict(json.loads(answer))
