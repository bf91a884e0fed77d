"""What the trail, a worker's agent and its tasks say to each other: length-prefixed frames.

Agent -> trail, after a first JSON frame that opens the link (``token``, ``worker``,
``host``, ``pid``): a tag byte, the run id (8 bytes) and a body.

* ``H``: may this run start here? (JSON: the task's key and the worker's pid)
* ``M``: a pickled ``(kind, payload)`` Message of the step's
* ``P``: what the step printed (for the trail's ``step_output``)
* ``X``: the step's process ended (how, as text)

Trail -> agent: JSON frames naming the run: ``{"run", "go", "why"}`` answers an ``H``,
``{"run", "reply"}`` is an operator's reply, ``{"run", "signal": "term" | "kill"}``.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time

from trail.layer1.executors.process import frame, unframe

CONNECT_TIMEOUT = 10.0
HELLO, MESSAGE, PRINTED, EXITED = b"H", b"M", b"P", b"X"
_RUN = struct.Struct("!Q")


def run_frame(tag: bytes, run_id: int, body: bytes) -> bytes:
    return frame(tag + _RUN.pack(run_id) + body)


def parse_run_frame(data: bytes) -> tuple[bytes, int, bytes]:
    """A run frame's tag, run id and body."""
    return data[:1], _RUN.unpack_from(data, 1)[0], data[1 + _RUN.size:]


def send_all(sock: socket.socket, data: bytes, timeout: float = CONNECT_TIMEOUT) -> None:
    """Send all of ``data`` on a non-blocking socket, waiting for room up to ``timeout``
    seconds (the socket stays non-blocking: another thread may be reading it)."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        try:
            view = view[sock.send(view):]
        except (BlockingIOError, InterruptedError):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the other end does not read") from None
            select.select([], [sock], [], left)


def start_connect(host: str, port: int) -> socket.socket:
    """A non-blocking socket whose connection to ``host:port`` is under way: writable once
    it is made or failed (``finish_connect`` says which)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                         type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, os.strerror(code))
    except OSError:
        sock.close()
        raise
    return sock


def finish_connect(sock: socket.socket) -> None:
    """Raise why a socket from ``start_connect`` could not connect, if it could not."""
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


def recv_frames(sock: socket.socket, buffer: bytearray) -> tuple[list[bytes], bool]:
    """Read what is ready on a non-blocking socket; the whole frames and whether it closed."""
    closed = False
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buffer += chunk
    return unframe(buffer), closed


def recv_answer(sock: socket.socket) -> bytes | None:
    """The one frame a blocking socket answers with, None if it closed first."""
    buffer = bytearray()
    while True:
        frames = unframe(buffer)
        if frames:
            return frames[0]
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None
        buffer += chunk


def tune(sock: socket.socket, after: int = 10, every: int = 5) -> None:
    """Set a link's socket up: small frames leave at once (without TCP_NODELAY a frame
    sent while the one before is unacknowledged waits for the peer's delayed ACK, 40 ms),
    and a peer that vanishes without closing the connection (power loss, a partition) is
    noticed within about ``after + 3 * every`` seconds."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", after), ("TCP_KEEPINTVL", every), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
