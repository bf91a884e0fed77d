"""The trail's end of the workers' links: one thread serving every agent's connection.

Each worker's agent opens one link (a TCP connection, wire.py) to this trail, with the
executor's secret, and asks over it for each run's go. The thread decides (a run connects
once: never again after it started, nor after it was interrupted or ended), relays what the
steps say as Messages through ``post`` (the executor hands them to the loop), and ends the
runs of a link that closes: their worker died or was killed.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import pickle
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trail.layer1.executors.base import Kind, Message
from trail.layer1.executors.dask import wire
from trail.layer1.executors.process import frame

log = logging.getLogger(__name__)


@dataclass
class Link:
    """One worker agent's connection; ``opened`` once its first frame showed the secret."""

    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    opened: bool = False
    worker: str = "?"
    host: str = "?"
    closed: bool = False


@dataclass
class DaskRun:
    run_id: int
    key: str = ""
    future: Any = None
    link: Link | None = None
    worker: str = ""
    connected: bool = False  # its go was given (once; never again)
    ended: bool = False  # its EXIT was posted
    interrupted: bool = False


class Links:
    """Serves the agents' links on a thread of its own (``start``), for the runs in ``runs``.

    ``lock`` guards the runs' links between the loop's thread and this one: a run's go is
    decided and answered under it, so an interrupt comes either before (the run is refused)
    or after (it finds the link to send SIGTERM down).
    """

    def __init__(self, token: str, runs: dict[int, DaskRun], post: Callable[[Message], None],
                 printed: Callable[[bytes], None]) -> None:
        self.lock = threading.Lock()
        self._token = token
        self._runs = runs
        self._post = post
        self._printed = printed
        self._links: list[Link] = []
        self._done: queue.Queue[int] = queue.Queue()  # runs whose Dask future finished
        self._sel = selectors.DefaultSelector()
        self._poke_r, self._poke_w = os.pipe()
        os.set_blocking(self._poke_r, False)
        os.set_blocking(self._poke_w, False)
        self._sel.register(self._poke_r, selectors.EVENT_READ, "poke")
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self, host: str) -> tuple[str, int]:
        """Listen on ``host`` (a free port) and serve; the endpoint workers call back on."""
        listener = socket.create_server((host, 0), backlog=128)
        listener.setblocking(False)
        self._listener = listener
        self._sel.register(listener, selectors.EVENT_READ, "listener")
        self._thread = threading.Thread(target=self._serve, name="trail-dask-io", daemon=True)
        self._thread.start()
        return host, listener.getsockname()[1]

    def send(self, run: DaskRun, message: dict[str, Any]) -> None:
        """Send ``message`` to the agent running ``run``'s step, if it runs."""
        with self.lock:
            link = run.link
            if link is None or link.closed:
                return
            try:
                wire.send_all(link.sock, frame(json.dumps({"run": run.run_id,
                                                           **message}).encode()))
            except OSError as exc:
                log.warning("run %s: could not reach its Dask worker: %s", run.run_id, exc)

    def future_done(self, run_id: int) -> None:
        """Called on Dask's thread when a run's task finished."""
        self._done.put(run_id)
        if self._poke_w >= 0:
            _poke(self._poke_w)

    def close(self) -> None:
        self._closing = True
        _poke(self._poke_w)
        if self._thread is not None:
            self._thread.join(5)
        for link in self._links:
            link.sock.close()
        if self._listener is not None:
            self._listener.close()
        poke_r, poke_w = self._poke_r, self._poke_w
        self._poke_r = self._poke_w = -1  # a late future_done writes nowhere
        os.close(poke_r)
        os.close(poke_w)

    # --- the thread ---

    def _serve(self) -> None:
        while not self._closing:
            for key, _ in self._sel.select(timeout=1.0):
                if key.data == "poke":
                    try:
                        while os.read(self._poke_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif key.data == "listener":
                    self._accept()
                else:
                    self._read(key.data)
            self._settle()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = Link(sock)
            self._links.append(link)
            self._sel.register(sock, selectors.EVENT_READ, link)

    def _read(self, link: Link) -> None:
        frames, closed = wire.recv_frames(link.sock, link.buffer)
        for data in frames:
            if not link.opened:
                if not self._open(link, data):
                    closed = True
                    break
                continue
            tag, run_id, body = wire.parse_run_frame(data)
            run = self._runs.get(run_id)
            if tag == wire.HELLO:
                self._hello(link, run_id, run, json.loads(body))
            elif run is None or run.link is not link:
                continue  # a run that ended here, or another link's
            elif tag == wire.MESSAGE:
                kind, payload = pickle.loads(body)
                self._post(Message(run_id, kind, payload))
            elif tag == wire.PRINTED:
                self._printed(body)
            elif tag == wire.EXITED:
                self._end(run, body.decode())
        if closed:
            self._lost(link)

    def _open(self, link: Link, data: bytes) -> bool:
        try:
            opening = json.loads(data)
            if not hmac.compare_digest(str(opening["token"]), self._token):
                raise ValueError("wrong secret")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("refused a Dask worker's connection: %s", exc)
            return False
        link.opened = True
        link.worker = str(opening.get("worker", "?"))
        link.host = str(opening.get("host", "?"))
        return True

    def _hello(self, link: Link, run_id: int, run: DaskRun | None,
               hello: dict[str, Any]) -> None:
        with self.lock:
            why = ""
            if run is None or run.ended:
                why = "this run has ended"
            elif run.connected:
                why = "this run already ran once (Dask started its task again)"
            elif run.interrupted:
                why = "this run was interrupted before it started"
            else:
                run.connected = True  # once: never again for this run
                run.worker = link.worker
                run.link = link
            try:
                wire.send_all(link.sock, frame(json.dumps(
                    {"run": run_id, "go": not why, "why": why}).encode()))
            except OSError:
                pass  # the link is lost: its runs end when its close is read
        if why:
            log.warning("refused a Dask task for run %s: %s", run_id, why)
            return
        assert run is not None
        self._post(Message(run_id, Kind.WHERE,
                           f"running on Dask worker {run.worker} (host {link.host}, task "
                           f"{hello.get('key', '?')}, pid {hello.get('pid', '?')})"))

    def _end(self, run: DaskRun, how: str) -> None:
        if not run.ended:
            run.ended = True
            self._post(Message(run.run_id, Kind.EXIT, how))

    def _lost(self, link: Link) -> None:
        with self.lock:
            link.closed = True
        self._sel.unregister(link.sock)
        link.sock.close()
        self._links.remove(link)
        for run in list(self._runs.values()):
            if run.link is link:
                self._end(run, f"was lost with Dask worker {run.worker} (its connection to "
                               f"the trail closed: the worker or its trail agent died or "
                               f"was killed)")

    def _settle(self) -> None:
        """Runs whose task ended without their go: cancelled, refused or failed on Dask."""
        while True:
            try:
                run_id = self._done.get_nowait()
            except queue.Empty:
                return
            run = self._runs.get(run_id)
            if run is None or run.connected or run.ended:
                continue
            future = run.future
            if future.cancelled():
                how = "was cancelled before it started on Dask"
            elif future.status == "error":
                how = f"failed on Dask before it started: {future.exception()!r}"
            else:
                how = f"ended on Dask without running ({future.result()})"
            self._end(run, how)


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"x")
    except OSError:
        pass  # full (it will be read) or closed (the thread is gone)
