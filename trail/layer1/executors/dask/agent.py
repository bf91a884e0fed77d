"""A Dask worker's agent: the small process that forks, watches and stops the worker's steps.

    python -m trail.layer1.executors.dask.agent LISTENER_FD SOCKET_PATH

Started by the worker (``worker.py``) and alive as long as it is: its stdin is a pipe from
the worker, so end-of-file says the worker is gone, and its steps are killed with it. Why a
process of its own: forking the big, many-threaded worker cost each step about 9 ms (this
small, single-threaded process forks in about 4) and held the worker's GIL meanwhile; and
the agent keeps a step's process forked ahead of time, so a step starts as soon as the
trail says go.

It keeps one link (one TCP connection, wire.py) to each trail server it runs steps for,
opened at that server's first step here. Tasks reach it on a Unix socket the worker made:
a request (a JSON header, the pickled step) is answered when the step's processes are gone
(or at once if the trail refuses the run); ``{"stop": keys}`` (a take-up's) kills those
tasks' steps. The link's promises:

* A step starts only on its trail's go (``H``, answered once per run: a task Dask starts
  again after its worker died is refused).
* The trail's ``term`` and ``kill`` reach the step's process groups (and those it adopted),
  nothing else. A step that ignores SIGTERM is killed by the trail's ``kill`` after its
  grace, or ``5 * SERVER_LOST_GRACE`` later if that never comes. A group the step stops
  itself first (a command on a host, asked through its ssh channel so that the host can
  say it ended) gets SIGTERM only when the time the step asked for is up and the step's
  process still runs.
* If the link closes (the trail's server died, even by SIGKILL), each of its steps gets
  SIGTERM and, ``SERVER_LOST_GRACE`` seconds later, SIGKILL: no step goes on unseen.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trail.layer1.executors.base import signal_groups
from trail.layer1.executors.dask import wire
from trail.layer1.executors.dask.child import Spare, fork_spare, job, take_spare
from trail.layer1.executors.process import (
    _write_all,
    describe_exit,
    frame,
    read_available,
    unframe,
)

log = logging.getLogger(__name__)

# Seconds from SIGTERM to SIGKILL when the trail's server is gone.
SERVER_LOST_GRACE = float(os.environ.get("TRAIL_DASK_ORPHAN_GRACE", "2"))
SPARE_AFTER = 0.005
# Modules (comma-separated) the agent imports once, so its steps' processes have them.
PRELOAD_VARIABLE = "TRAIL_DASK_PRELOAD"
STOP_WAIT = 5.0  # seconds a take-up's stop waits for the killed steps to be gone
_STRAGGLERS_EVERY = 0.2  # seconds between looks at an ended step's groups
# Seconds from SIGTERM to SIGKILL for a group the step was to stop itself and did not.
LATER_GRACE = 2.0


@dataclass
class _Task:
    """A Dask task's connection: its request, then (at the step's end) the answer."""

    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    frames: list[bytes] = field(default_factory=list)

    def answer(self, **answer: Any) -> None:
        try:
            self.sock.setblocking(True)
            self.sock.sendall(frame(json.dumps(answer).encode()))
        except OSError:
            pass  # the task is gone; its worker with it
        self.sock.close()


@dataclass
class _Link:
    """The connection to one trail server; until ``connect_by`` is None, it is being made
    and what is said to the trail waits in ``unsent``."""

    sock: socket.socket
    where: str
    connect_by: float | None
    unsent: bytearray = field(default_factory=bytearray)
    buffer: bytearray = field(default_factory=bytearray)
    waiting: dict[int, tuple[_Task, bytes, bool, str]] = field(default_factory=dict)
    steps: dict[int, _Step] = field(default_factory=dict)
    closed: bool = False

    @classmethod
    def open(cls, host: str, port: int, token: str, worker: str) -> _Link:
        """A link whose connection is under way (without waiting for it here: a trail that
        does not answer must not hold up the other steps' relays and stops)."""
        sock = wire.start_connect(host, port)
        wire.tune(sock)
        opening = {"token": token, "worker": worker, "host": socket.gethostname(),
                   "pid": os.getpid()}
        return cls(sock, f"{host}:{port}", time.monotonic() + wire.CONNECT_TIMEOUT,
                   bytearray(frame(json.dumps(opening).encode())))

    def send(self, data: bytes) -> None:
        """Send ``data`` to the trail, or keep it for when the connection is made."""
        if self.connect_by is not None:
            self.unsent += data
        else:
            wire.send_all(self.sock, data)

    def connected(self) -> None:
        """The connection is made (OSError: it failed): what waited goes out."""
        wire.finish_connect(self.sock)
        self.connect_by = None
        unsent, self.unsent = bytes(self.unsent), bytearray()
        wire.send_all(self.sock, unsent)


@dataclass
class _Step:
    run_id: int
    key: str
    link: _Link | None  # None once the link closed
    task: _Task
    child: Spare
    groups: list[int]
    out_buffer: bytearray = field(default_factory=bytearray)
    status: int | None = None  # its process's, once it ended
    kill_at: float | None = None  # when its groups get SIGKILL, if they are still there
    # Groups the step stops itself first (a command on a host, asked through its channel,
    # so the host can say it ended): the seconds each is given. Once the step is stopped,
    # when each is due SIGTERM, unless the step's process has ended by then.
    later: list[tuple[int, float]] = field(default_factory=list)
    due: list[tuple[float, int]] = field(default_factory=list)

    def adopt(self, group: bytes) -> None:
        """A process group the step started: "PGID", stopped with the step, or "PGID
        SECONDS", which the step stops itself first (child.py's G frames)."""
        pgid, _, after = group.decode().partition(" ")
        if after:
            self.later.append((int(pgid), float(after)))
        else:
            self.groups.append(int(pgid))

    @property
    def deadlines(self) -> list[float]:
        """When this step next needs the agent: its groups' SIGKILL, or SIGTERM due."""
        return [t for t in (self.kill_at, *(when for when, _ in self.due)) if t is not None]

    def term(self, grace: float) -> None:
        signal_groups(self.groups, signal.SIGTERM)
        now = time.monotonic()
        if self.kill_at is None:
            self.kill_at = now + grace
        self.due += [(now + after, pgid) for pgid, after in self.later]
        self.later.clear()

    def kill(self) -> None:
        self.groups += [pgid for pgid, _ in self.later] + [pgid for _, pgid in self.due]
        self.later.clear()
        self.due.clear()
        signal_groups(self.groups, signal.SIGKILL)
        self.kill_at = None

    def stop_due(self, now: float, grace: float) -> None:
        """SIGTERM the groups the step was to stop itself and has not (its process still
        runs) by now; those of a step that ended are its commands' business no more."""
        if self.status is not None:
            self.due.clear()
            return
        for when, pgid in list(self.due):
            if now >= when:
                self.due.remove((when, pgid))
                signal_groups([pgid], signal.SIGTERM)
                self.groups.append(pgid)
                if self.kill_at is None or self.kill_at > now + grace:
                    self.kill_at = now + grace

    @property
    def over(self) -> bool:
        """Its process ended, and its groups are gone or were killed."""
        return self.status is not None and (self.kill_at is None or not _alive(self.groups))


class Agent:
    """One worker's steps. ``serve`` is its event loop."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.links: dict[tuple[str, int, str], _Link] = {}
        self.steps: list[_Step] = []
        self.spare: Spare | None = None
        self.tasks: dict[socket.socket, _Task] = {}  # connected, their request still coming
        self.sel = selectors.DefaultSelector()
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, self._accept)
        self.sel.register(0, selectors.EVENT_READ, self._worker_gone)

    def serve(self) -> None:
        # This 'while' loop is the agent's event loop: everything ready is handled on each
        # pass. After SPARE_AFTER seconds with nothing to do, the next step's process is
        # forked ahead of time (not at once: a short step's output would wait for the fork).
        while True:
            wait = self._wait()
            if self.spare is None:
                wait = SPARE_AFTER if wait is None else min(wait, SPARE_AFTER)
            ready = self.sel.select(wait)
            if not ready and self.spare is None:
                self.spare = fork_spare()
            for key, _ in ready:
                handler: Callable[[Any], None] = key.data
                handler(key.fileobj)
            self._deadlines()

    def _wait(self) -> float | None:
        links = [link.connect_by for link in self.links.values() if link.connect_by is not None]
        times = [t for step in self.steps for t in step.deadlines] + links
        wait = max(0.0, min(times) - time.monotonic()) if times else None
        if any(s.status is not None for s in self.steps):
            wait = min(wait if wait is not None else _STRAGGLERS_EVERY, _STRAGGLERS_EVERY)
        return wait

    def _deadlines(self) -> None:
        now = time.monotonic()
        for link in list(self.links.values()):
            if link.connect_by is not None and now >= link.connect_by:
                self._link_lost(link, f"cannot reach the trail at {link.where}: no answer "
                                      f"in {wire.CONNECT_TIMEOUT:.0f} s")
        for step in list(self.steps):
            step.stop_due(now, LATER_GRACE)
            if step.kill_at is not None and now >= step.kill_at:
                step.kill()
            self._finish(step)

    # --- tasks ---

    def _accept(self, _listener: Any) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ, self._from_task)

    def _from_task(self, sock: socket.socket) -> None:
        task = self.tasks.setdefault(sock, _Task(sock))
        frames, closed = wire.recv_frames(sock, task.buffer)
        task.frames += frames
        if len(task.frames) < 2 and not closed:
            return
        self.sel.unregister(sock)
        del self.tasks[sock]
        if len(task.frames) < 2:
            sock.close()
            return
        header = json.loads(task.frames[0])
        if "stop" in header:
            task.answer(found=self._stop(header["stop"]))
        else:
            self._request(task, header, task.frames[1])

    def _request(self, task: _Task, header: dict[str, Any], payload: bytes) -> None:
        """Ask the run's trail for its go (over the link, opened if need be)."""
        host, port = header["endpoint"]
        token, run_id = str(header["token"]), int(header["run"])
        try:
            link = self._link(str(host), int(port), token, header)
        except OSError as exc:
            task.answer(refused=f"cannot reach the trail at {host}:{port}: {exc}")
            return
        if run_id in link.waiting:
            task.answer(refused="another task of this run waits for the trail here")
            return
        hello = {"key": header["key"], "pid": header["pid"]}
        link.waiting[run_id] = (task, payload, bool(header["capture"]), str(header["key"]))
        self._send(link, wire.run_frame(wire.HELLO, run_id, json.dumps(hello).encode()))

    def _stop(self, keys: list[str]) -> list[str]:
        """SIGKILL these tasks' steps and answer once their processes are gone (a take-up
        serves the run right after)."""
        found = [step for step in self.steps if step.key in keys]
        for step in found:
            step.kill()
        _wait_gone([step.child.pid for step in found], STOP_WAIT)
        return [step.key for step in found]

    # --- links to trail servers ---

    def _link(self, host: str, port: int, token: str, header: dict[str, Any]) -> _Link:
        """The link to this trail, opened if need be."""
        link = self.links.get((host, port, token))
        if link is None:
            link = _Link.open(host, port, token, str(header["worker"]))
            self.links[(host, port, token)] = link
            self.sel.register(link.sock, selectors.EVENT_WRITE,
                              lambda _s: self._connected(link))
        return link

    def _connected(self, link: _Link) -> None:
        """The link's connection was made (or failed): say what waited, then listen."""
        try:
            link.connected()
        except OSError as exc:
            self._link_lost(link, f"cannot reach the trail at {link.where}: {exc}")
            return
        self.sel.modify(link.sock, selectors.EVENT_READ, lambda _s: self._from_trail(link))

    def _send(self, link: _Link, data: bytes) -> None:
        try:
            link.send(data)
        except OSError:
            self._link_lost(link)

    def _from_trail(self, link: _Link) -> None:
        frames, closed = wire.recv_frames(link.sock, link.buffer)
        for data in frames:
            message = json.loads(data)
            run_id = int(message["run"])
            if "go" in message:
                self._answered(link, run_id, bool(message["go"]), str(message.get("why")))
                continue
            step = link.steps.get(run_id)
            if step is None:
                continue
            if "reply" in message:
                try:
                    _write_all(step.child.in_w, frame(json.dumps(message["reply"]).encode()))
                except OSError:
                    pass  # the step is gone
            elif message.get("signal") == "term":
                step.term(SERVER_LOST_GRACE * 5)  # the trail's kill comes after its grace
            elif message.get("signal") == "kill":
                step.kill()
        if closed:
            self._link_lost(link)

    def _answered(self, link: _Link, run_id: int, go: bool, why: str) -> None:
        waiting = link.waiting.pop(run_id, None)
        if waiting is None:
            return
        task, payload, capture, key = waiting
        if not go:
            task.answer(refused=why)
            return
        child, self.spare = take_spare(self.spare), None
        step = _Step(run_id, key, link, task, child, [child.pid])
        try:
            _write_all(child.in_w, job(payload, capture))
        except OSError:
            pass  # it died meanwhile: its end is read and reported as any step's
        link.steps[run_id] = step
        self.steps.append(step)
        self.sel.register(child.out_r, selectors.EVENT_READ, lambda _fd: self._from_step(step))
        self.sel.register(child.print_r, selectors.EVENT_READ,
                          lambda _fd: self._printed(step))

    def _link_lost(self, link: _Link, why: str = "the trail closed its connection") -> None:
        """The trail's server is gone: its steps are stopped, its waiting tasks refused."""
        if link.closed:
            return
        link.closed = True
        for key, known in list(self.links.items()):
            if known is link:
                del self.links[key]
        self.sel.unregister(link.sock)
        link.sock.close()
        for task, _payload, _capture, _key in link.waiting.values():
            task.answer(refused=why)
        link.waiting.clear()
        for step in link.steps.values():
            step.link = None
            step.term(SERVER_LOST_GRACE)
        link.steps.clear()

    def _up(self, step: _Step, tag: bytes, body: bytes) -> None:
        if step.link is not None:
            self._send(step.link, wire.run_frame(tag, step.run_id, body))

    # --- steps ---

    def _from_step(self, step: _Step) -> None:
        out_r = step.child.out_r
        eof = read_available(out_r, step.out_buffer)
        self._printed(step)  # what it printed reaches the trail before its result
        for data in unframe(step.out_buffer):
            if data[:1] == b"G":
                step.adopt(data[1:])
            else:
                self._up(step, wire.MESSAGE, data[1:])
        if eof:
            self.sel.unregister(out_r)
            os.close(out_r)
            step.status = os.waitpid(step.child.pid, 0)[1]
            self._up(step, wire.EXITED, describe_exit(step.status).encode())
            self._finish(step)

    def _printed(self, step: _Step) -> None:
        fd = step.child.print_r
        if fd < 0:
            return
        buffer = bytearray()
        eof = read_available(fd, buffer)
        if buffer:
            self._up(step, wire.PRINTED, bytes(buffer))
        if eof:
            self.sel.unregister(fd)
            os.close(fd)
            step.child.print_r = -1

    def _finish(self, step: _Step) -> None:
        """Answer a step's task once it is over."""
        if not step.over or step.status is None:
            return
        if step.child.print_r >= 0:  # a straggler may hold it open: read what is there
            self._printed(step)
            if step.child.print_r >= 0:
                self.sel.unregister(step.child.print_r)
                os.close(step.child.print_r)
                step.child.print_r = -1
        self.steps.remove(step)
        if step.link is not None:
            step.link.steps.pop(step.run_id, None)
        os.close(step.child.in_w)
        step.task.answer(end=describe_exit(step.status))

    def _worker_gone(self, _stdin: Any) -> None:
        if os.read(0, 4096):
            return
        for step in self.steps:
            step.kill()
        if self.spare is not None:
            os.kill(self.spare.pid, signal.SIGKILL)
        raise SystemExit(0)


def _running(pid: int) -> bool:
    """The process is there and not a zombie (one the agent has yet to reap is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone (or no /proc here: nothing to wait on)
        return False


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.01)


def _alive(groups: list[int]) -> bool:
    for pgid in groups:
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="trail dask agent: %(message)s")
    import cloudpickle  # noqa: F401 - loaded once here, not in every step's process

    for name in os.environ.get(PRELOAD_VARIABLE, "").split(","):
        if name.strip():
            try:
                importlib.import_module(name.strip())
            except Exception as exc:  # the steps import it themselves, as without it
                log.warning("cannot preload %s for the steps: %s", name.strip(), exc)

    authkey = sys.stdin.buffer.readline().strip()
    multiprocessing.current_process().authkey = bytes.fromhex(authkey.decode())
    listener = socket.socket(fileno=int(sys.argv[1]))
    path = Path(sys.argv[2])
    # What is loaded now is never garbage: a step's collections skip it, rather than touch
    # (so copy) every page of it (a step making 200,000 dicts: 22 ms of CPU beyond its
    # own, not 48).
    gc.freeze()
    try:
        Agent(listener).serve()
    finally:
        path.unlink(missing_ok=True)
        path.parent.rmdir()


if __name__ == "__main__":
    main()
