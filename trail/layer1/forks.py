"""What a process forked from the server keeps, and the warden that outlives a crash.

A process forked from the server (a step under the process executor, a fork or a
``multiprocessing`` worker of a thread-executor step, a ``threadsafe_class`` manager)
starts with a copy of every descriptor the server holds. Two kinds must not stay there:

- the server's own: its listening sockets, the connections it accepted, its journal and
  the journal's ``-wal``/``-shm``. An orphan that kept the listening socket would make a
  dead server look alive; one that kept the journal could write into it. After every fork
  (``os.register_at_fork``) the child points those descriptors at ``/dev/null`` (the
  numbers stay taken, so nothing the child opens later is mistaken for them) and keeps the
  journal's connection object alive for good, so SQLite never closes (and checkpoints)
  it from the child.
- the write end of the warden's pipe, which only the server may hold.

The warden is a small process forked from the server at its first step. The server tells
it, over a pipe, each step's process group as the step starts and ends. When the pipe
reaches end-of-file (the server is gone, by a clean exit or a SIGKILL) it kills every
group still listed, so a step's forks, ``multiprocessing`` workers and ``subprocess``
children die with the server. What escapes: a process that leaves its step's group itself
(``setsid``, ``setpgid``, daemons) and processes started by thread-executor steps (they
are in the server's own group, which trail does not own); ShellCommands are stopped by
their wrapper instead (``trail.layer2.steps.wrapper``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_socket_paths: set[str] = set()  # the server's socket files
_file_paths: set[str] = set()  # the journal's files
_objects: list[Any] = []  # what a child must never free (journal connections)
_warden_fd: list[int] = []  # the write end of the warden's pipe, in the server only


def server_sockets(paths: Iterable[str]) -> None:
    """Descriptors of these sockets (listening or accepted) are not a forked child's."""
    with _lock:
        _socket_paths.update(os.path.abspath(p) for p in paths)


def server_files(paths: Iterable[str | Path], keep: Any = None, resolved: bool = False
                 ) -> None:
    """Descriptors of these files are not a forked child's; ``keep`` is never freed there.
    ``resolved``: the paths are real paths already (no link in them), as the kernel shows."""
    with _lock:
        for path in paths:
            _file_paths.add(str(path) if resolved else os.path.realpath(path))
        if keep is not None:
            _objects.append(keep)


def forget(paths: Iterable[str | Path], keep: Any = None, resolved: bool = False) -> None:
    """The server closed these: nothing to keep from children any more."""
    with _lock:
        for path in paths:
            _socket_paths.discard(os.path.abspath(path))
            _file_paths.discard(str(path) if resolved else os.path.realpath(path))
        if keep is not None:
            with contextlib.suppress(ValueError):
                _objects.remove(keep)


def _socket_inodes(paths: set[str]) -> set[str]:
    """The inodes of Unix sockets bound at ``paths`` (listening and accepted ones)."""
    found = set()
    try:
        with open("/proc/net/unix") as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) >= 8 and fields[7] in paths:
                    found.add(fields[6])
    except OSError:
        pass
    return found


def _blank_in_child() -> None:
    """After a fork, in the child: let go of what is the server's (see the docstring)."""
    # No lock: the forking thread is the only one in the child; a lock another thread held
    # at fork time would never be released here.
    for fd in _warden_fd:
        with contextlib.suppress(OSError):
            os.close(fd)
    _warden_fd.clear()
    if not (_socket_paths or _file_paths):
        return
    for keep in _objects:  # never freed in this process, so never closed by SQLite here
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(keep))
    inodes = _socket_inodes(_socket_paths) if _socket_paths else set()
    wanted = {f"socket:[{inode}]" for inode in inodes} | _file_paths
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = []
    null = -1
    try:
        for fd in fds:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target in wanted:
                if null < 0:
                    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                with contextlib.suppress(OSError):
                    os.dup2(null, fd, inheritable=False)
    finally:
        if null >= 0:
            os.close(null)
    _socket_paths.clear()
    _file_paths.clear()
    _objects.clear()


os.register_at_fork(after_in_child=_blank_in_child)


def let_go_of_pipes(keep: Iterable[int]) -> None:
    """In a step's forked process: point every close-on-exec pipe but ``keep`` at
    /dev/null. Another thread of the server may have had one open at the fork (the pipe
    ``subprocess`` waits on until its child has exec'd, a wake-up pipe); held here, it
    would make that thread wait for this step to end. Numbers stay taken, as above."""
    kept = set(keep)
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    null = -1
    try:
        for fd in fds:
            if fd <= 2 or fd in kept:
                continue
            try:
                if not (stat.S_ISFIFO(os.fstat(fd).st_mode)
                        and fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC):
                    continue
                if null < 0:
                    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                os.dup2(null, fd, inheritable=False)
            except OSError:  # closed meanwhile (the listing's own descriptor)
                continue
    finally:
        if null >= 0:
            os.close(null)


# --- the warden ---------------------------------------------------------------------

def _warden_write(line: str) -> None:
    if not _warden_fd:
        _start_warden()
    if not _warden_fd:
        return
    try:
        os.write(_warden_fd[0], line.encode())
    except OSError as exc:  # the warden is gone: the steps still die with their parent
        log.warning("the warden is gone (%s); a crash may leave step processes behind", exc)
        _warden_fd.clear()


def guard_group(pgid: int) -> None:
    """Kill process group ``pgid`` if the server dies before ``release_group(pgid)``."""
    with _lock:
        _warden_write(f"+{pgid}\n")


def release_group(pgid: int) -> None:
    with _lock:
        _warden_write(f"-{pgid}\n")


def _start_warden() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the warden: never returns
        _warden(read_end, write_end)
    os.close(read_end)
    _warden_fd.append(write_end)
    threading.Thread(target=_reap_warden, args=(pid,), name="trail-warden-reaper",
                     daemon=True).start()


def _reap_warden(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _warden(read_end: int, write_end: int) -> None:
    code = 0
    try:
        os.close(write_end)
        os.setsid()  # out of the server's group: a signal to it is not one to the warden
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_IGN)
        os.closerange(0, read_end)
        os.closerange(read_end + 1, _max_fd())
        groups: set[int] = set()
        pending = b""
        while True:
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line[:1] == b"+":
                    groups.add(int(line[1:]))
                elif line[:1] == b"-":
                    groups.discard(int(line[1:]))
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
    except BaseException:  # noqa: B036 - the warden must reach os._exit, always
        code = 70
    finally:
        os._exit(code)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 65536


def holders(path: str) -> list[int]:
    """The pids holding a Unix socket bound at ``path`` (those whose descriptors this
    user can read): who keeps a socket alive."""
    inodes = _socket_inodes({os.path.abspath(path)})
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(entry / "fd" / fd) in wanted:
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(found)


def describe(pid: int) -> str:
    """``pid`` and its command line, as far as it can be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return str(pid)
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return f"{pid} ({command[:80]})" if command else str(pid)
