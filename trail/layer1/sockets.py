"""Where a trail's sockets live, and who may use them.

Sockets sit in a directory only their owner can enter (0700): ``$XDG_RUNTIME_DIR/trail`` or
``/tmp/trail-<uid>``. The API socket is 0600; its event stream is the same path plus
``.events``. A socket file left by a dead server is found stale (nobody accepts on it) and
replaced; a live one is never taken over.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

import zmq

from trail.errors import SocketInUseError, TrailError
from trail.layer1 import forks

log = logging.getLogger(__name__)

EVENTS_SUFFIX = ".events"
LOG_KEEP_SECONDS = 24 * 3600  # a dead server's log is kept this long for a post-mortem
# What a request frame may be: the wire's limit plus room, so a request just over the limit
# still gets a reply that says so.
MAX_FRAME_BYTES = 2 << 20
_MAX_IPC_PATH = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


def socket_dir() -> Path:
    """This user's socket directory, made (0700) if missing.

    ``$XDG_RUNTIME_DIR/trail``, else ``/tmp/trail-<uid>``. One that is not safe (another
    user made it first, in a shared runtime directory) is passed over with a warning for
    the next; if none is safe, a new private directory under the temporary directory.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    candidates = [Path(runtime) / "trail"] if runtime and os.path.isdir(runtime) else []
    candidates.append(Path(tempfile.gettempdir()) / f"trail-{os.getuid()}")
    for path in candidates:
        try:
            ensure_private_dir(path)
        except (TrailError, OSError) as exc:
            log.warning("not using %s for sockets: %s", path, exc)
            continue
        return path
    path = Path(tempfile.mkdtemp(prefix=f"trail-{os.getuid()}-"))
    log.warning("using the new private directory %s for sockets", path)
    return path


def prune_stale(directory: Path | None = None, log_age: float = LOG_KEEP_SECONDS) -> list[str]:
    """Remove what crashed servers left in this user's socket directory: socket files
    nobody accepts on (and their ``.events``), and logs and step logs (``.sock.steps``) of
    servers long gone (older than ``log_age`` seconds, whose socket is gone). Returns what
    it removed."""
    if directory is None:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        found = [Path(runtime) / "trail"] if runtime else []
        found.append(Path(tempfile.gettempdir()) / f"trail-{os.getuid()}")
        directories = [d for d in found if d.is_dir() and d.stat().st_uid == os.getuid()]
    else:
        directories = [directory]
    removed: list[str] = []
    now = time.time()
    for where in directories:
        for path in where.glob("*.sock"):
            try:
                info = path.lstat()
                # A young file may be a server between its bind and its listen.
                if (not stat.S_ISSOCK(info.st_mode) or now - info.st_mtime < 10
                        or is_live(str(path))):
                    continue
            except OSError:
                continue
            for stale in (str(path), events_file(str(path))):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
                    removed.append(stale)
        for log_path in where.glob("*.sock.log"):
            try:
                if (not os.path.exists(str(log_path)[:-len(".log")])
                        and now - log_path.stat().st_mtime > log_age):
                    log_path.unlink()
                    removed.append(str(log_path))
            except OSError:
                continue
        for steps in where.glob("*.sock.steps"):  # step logs of runs without a journal
            try:
                info = steps.lstat()
                if (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
                        and not os.path.exists(str(steps)[:-len(".steps")])
                        and now - max([info.st_mtime, *(p.stat().st_mtime
                                                        for p in steps.iterdir())])
                        > log_age):
                    shutil.rmtree(steps)
                    removed.append(str(steps))
            except OSError:
                continue
    if removed:
        log.info("removed %d files left by servers that died: %s", len(removed),
                 ", ".join(removed))
    return removed


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


def check_owner(directory: Path, what: str) -> None:
    """Refuse a ``directory`` owned by another user (root's is trusted: only root could
    change it anyway). Its owner could swap, read or replace what trail writes there. Root
    is refused too: a user's directory could point root's writes anywhere."""
    try:
        owner = directory.stat().st_uid
    except FileNotFoundError:
        return
    if owner not in (os.getuid(), 0):
        try:
            import pwd

            name = pwd.getpwuid(owner).pw_name
        except (KeyError, ImportError):
            name = f"uid {owner}"
        raise TrailError(f"{what} directory {directory} belongs to {name}, not to you: "
                         f"trail will not write there (choose a directory of your own)")


def private_file(path: str) -> str:
    """Make the file at ``path`` if missing, 0600 from the start; make an existing one of
    ours 0600. For logs and step output that other users must not read (so not in a
    directory another user owns)."""
    check_owner(Path(path).parent, "the log's")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def new_socket_file(name: str = "trail") -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40] or "trail"
    return str(socket_dir() / f"{safe}-{os.getpid()}-{os.urandom(3).hex()}.sock")


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


EVENTS_QUEUED = 10_000  # per subscriber, on each side: about 2 MB at most for a laggard


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
                # A subscriber that lags is sent up to EVENTS_QUEUED events before ZeroMQ
                # drops some for it (it sees the gap in seq): the default, 1,000, was one
                # burst of a few hundred steps.
                self.events = bind(self.context, zmq.XPUB, self.events_file,
                                   {zmq.SNDHWM: EVENTS_QUEUED})
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
