"""How a client's request bytes reach a server and its reply comes back: ZeroMQ or in-process.

A TrailClient speaks the wire (``trail.layer1.wire``) through a Transport and knows nothing
of sockets: ``ZmqTransport`` talks to a served trail over its ``ipc://`` API socket;
``InProcessTransport`` hands the bytes to a server's request handler in this process, so
clients and their faces can be tested without sockets.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from typing import Protocol

import zmq

from trail.errors import TrailConnectionError
from trail.layer1.sockets import is_live


class Transport(Protocol):
    """Carries one request's bytes to a server and returns its reply's bytes."""

    def request(self, body: bytes) -> bytes:
        """Send ``body``; return the reply. Raises TrailConnectionError when none comes."""
        ...

    def close(self) -> None:
        """Let go of what the transport holds; a later request may open it again."""
        ...


class ZmqTransport:
    """A DEALER socket to the trail served at ``socket_file``; safe to share between threads.

    Each request waits up to ``timeout`` seconds and raises TrailConnectionError with the
    reason when no reply comes (the file is gone, nobody listens, or the server is silent).
    After a timeout the socket is dropped, and each request carries its own envelope frame
    that the server echoes back, so a late reply never answers a later request. A forked
    child opens its own socket (ZeroMQ sockets must not cross a fork).

    ``wait_while``: while it returns True, a silent server is waited for past ``timeout``:
    the server is known to be there, only busy (``trail run``'s own server, whose loop a
    step holding the GIL holds up too).
    """

    def __init__(self, socket_file: str, timeout: float = 5.0,
                 wait_while: Callable[[], bool] | None = None) -> None:
        self.socket_file = os.path.abspath(socket_file)
        self.timeout = timeout
        self.wait_while = wait_while
        self._lock = threading.Lock()
        self._socket: zmq.Socket | None = None
        self._pid = os.getpid()
        self._tags = itertools.count(1)

    def request(self, body: bytes) -> bytes:
        tag = next(self._tags).to_bytes(8, "big")
        with self._lock:
            sock = self._connect()
            sock.send_multipart([tag, b"", body])
            while True:
                if not sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                    if self.wait_while is not None and self.wait_while():
                        continue  # there, and busy: its reply will come
                    self._drop()
                    raise TrailConnectionError(self.socket_file, self._silence_reason())
                frames = sock.recv_multipart()
                if frames[0] == tag:
                    return frames[-1]
                # else: a late answer to an earlier request; it answers nobody now

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connect(self) -> zmq.Socket:
        # Checked every request (a stat costs microseconds): a server that shut down is
        # reported at once, not after the timeout.
        if not os.path.exists(self.socket_file):
            self._drop()
            raise TrailConnectionError(self.socket_file, "the socket file does not exist")
        if self._socket is not None and self._pid == os.getpid():
            return self._socket
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"ipc://{self.socket_file}")
        self._socket, self._pid = sock, os.getpid()
        return sock

    def _drop(self) -> None:
        """Forget the socket, so nothing still on its way to it can answer a later request."""
        if self._socket is not None and self._pid == os.getpid():
            self._socket.close(0)
        self._socket = None

    def _silence_reason(self) -> str:
        if not os.path.exists(self.socket_file):
            return "the socket file is gone (the server has shut down)"
        try:
            live = is_live(self.socket_file)
        except OSError as exc:
            return f"cannot connect: {exc}"
        if not live:
            return "nobody listens on it (the server has exited; the file is stale)"
        return f"no reply within {self.timeout:g} s"


class InProcessTransport:
    """Hands each request to ``handle`` (a server's request handler) in this thread.

    For tests and embedding: no socket, no timeout; ``handle`` takes a request's bytes and
    returns the reply's bytes, as ``lambda body: manager.handle(body).to_json()`` does.
    """

    def __init__(self, handle: Callable[[bytes], bytes]) -> None:
        self.handle = handle

    def request(self, body: bytes) -> bytes:
        return self.handle(body)

    def close(self) -> None:
        """Nothing to let go of."""
