"""Where a trail's sockets live, and who may use them.

Sockets sit in a directory only their owner can enter (0700): ``$XDG_RUNTIME_DIR/trail`` or
``/tmp/trail-<uid>``. The API socket is 0600; its event stream is the same path plus
``.events``. A socket file left by a dead server is found stale (nobody accepts on it) and
replaced; a live one is never taken over.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import stat
from pathlib import Path

import zmq

from trail.errors import SocketInUseError, TrailError
from trail.layer1 import forks

EVENTS_SUFFIX = ".events"
# What a request frame may be: the wire's limit plus room, so a request just over the limit
# still gets a reply that says so.
MAX_FRAME_BYTES = 2 << 20
_MAX_IPC_PATH = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


def socket_dir() -> Path:
    """This user's socket directory, made (0700) if missing; refused if it is not safe."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "trail" if runtime and os.path.isdir(runtime) else None
    path = base or Path("/tmp") / f"trail-{os.getuid()}"
    ensure_private_dir(path)
    return path


def ensure_private_dir(path: Path) -> None:
    """Make ``path`` 0700 if missing; refuse one owned by someone else or open to others."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise TrailError(f"{path} is not a directory") from None
        if info.st_uid != os.getuid():
            raise TrailError(f"{path} belongs to uid {info.st_uid}, not to you") from None
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)


def private_file(path: str) -> str:
    """Make the file at ``path`` if missing, 0600 from the start; make an existing one of
    ours 0600. For logs and step output that other users must not read."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def new_socket_file(name: str = "trail") -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40] or "trail"
    return str(socket_dir() / f"{safe}-{os.getpid()}-{secrets.token_hex(3)}.sock")


def events_file(socket_file: str) -> str:
    return socket_file + EVENTS_SUFFIX


def is_live(path: str) -> bool:
    """Someone accepts connections on the Unix socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise
    finally:
        probe.close()
    return True


def claim(path: str) -> None:
    """Make ``path`` free to bind: remove a stale socket, refuse a live one or a non-socket."""
    if len(os.fsencode(path)) > _MAX_IPC_PATH:
        raise TrailError(f"the socket path is longer than {_MAX_IPC_PATH} bytes: {path}")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise TrailError(f"{path} exists and is not a socket; trail will not replace it")
    if is_live(path):
        raise SocketInUseError(path, ", ".join(forks.describe(pid) for pid in forks.holders(path)))
    os.unlink(path)


def bind(context: zmq.Context, kind: int, path: str,
         options: dict[int, int] | None = None) -> zmq.Socket:
    """A socket of ``kind`` bound at ``path`` (0600), after claiming the path."""
    claim(path)
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in (options or {}).items():
        sock.setsockopt(option, value)
    old = os.umask(0o177)  # created 0600, never briefly open to others
    try:
        sock.bind(f"ipc://{path}")
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return sock


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ServerSockets:
    """A server's API socket (ROUTER) and event stream (XPUB), bound and owned together.

    XPUB rather than PUB: the manager sees each subscription come and go. It greets a new
    one with a ``hello`` event, so a subscriber knows when it can no longer miss anything,
    and it skips encoding events while nobody listens.
    """

    def __init__(self, socket_file: str) -> None:
        self.socket_file = socket_file
        self.events_file = events_file(socket_file)
        self.context = zmq.Context()
        try:
            # A frame bigger than any request trail accepts is refused as it arrives (the
            # sender is disconnected), never buffered whole first.
            self.api = bind(self.context, zmq.ROUTER, socket_file,
                            {zmq.MAXMSGSIZE: MAX_FRAME_BYTES})
            try:
                self.events = bind(self.context, zmq.XPUB, self.events_file)
                self.events.setsockopt(zmq.XPUB_VERBOSER, 1)
            except BaseException:
                self.api.close(0)
                remove(socket_file)
                raise
        except BaseException:
            self.context.term()
            raise
        # Never a forked child's: an orphan holding them would make this server look alive.
        forks.server_sockets([socket_file, self.events_file])

    def close(self) -> None:
        """Close both sockets and remove their files."""
        self.api.close(0)
        self.events.close(0)
        remove(self.socket_file)
        remove(self.events_file)
        forks.forget([self.socket_file, self.events_file])
        self.context.term()
