"""Running a command on another host through the system's OpenSSH client.

No agent: the remote side needs only a POSIX ``sh`` and ``setsid`` (util-linux, on every
Linux). The user's ``~/.ssh/config``, keys and agent apply as for any ``ssh`` they type.

Commands run there under the stop wrapper (``trail.layer2.steps.wrapper``).
"""

from __future__ import annotations

import collections
import functools
import glob
import hashlib
import logging
import os
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

SSH_FAILED = 255  # ssh's own exit code for its errors
SHARE_PERSIST = 60  # seconds a shared connection trail opened outlives its last command
_MAX_SOCKET_PATH = 104  # bytes: 107 at most on Linux, 103 on the BSDs
_SSH_TEMP_SUFFIX = 17  # ssh binds the master's socket at the path plus ".<16 random>" first
_DIGEST = 20  # hex characters of a connection's name
_SHARING = ("controlmaster", "controlpath", "controlpersist")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where and as whom a command runs: ``host`` None means this machine."""

    host: str | None = None
    user: str | None = None
    port: int | None = None
    ssh_options: tuple[str, ...] = ()
    sudo_user: str | None = None  # "root" for plain sudo=True
    connect_timeout: float = 10.0
    alive_interval: float = 15.0
    remote_made: ClassVar[bool] = False  # a Target with a host was made in this process

    def __post_init__(self) -> None:
        if self.host is not None:
            Target.remote_made = True
        if self.host is not None and (not self.host or self.host.startswith("-")
                                      or any(c.isspace() for c in self.host)):
            raise ValueError(f"not a host name: {self.host!r}")
        if self.host is None and (self.user or self.port or self.ssh_options):
            raise ValueError("user, port and ssh_options need a host")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"not a port: {self.port!r}")
        if self.connect_timeout <= 0 or self.alive_interval <= 0:
            raise ValueError("connect_timeout and alive_interval must be positive")

    @property
    def where(self) -> str:
        """The host as the operator reads it: ``user@host:port``."""
        assert self.host is not None
        where = self.host if self.user is None else f"{self.user}@{self.host}"
        return where if self.port is None else f"{where}:{self.port}"

    def sudo_argv(self) -> list[str]:
        """``sudo -n``: sudo never asks for a password; it fails at once if it would."""
        if self.sudo_user is None:
            return []
        return ["sudo", "-n", "-u", self.sudo_user, "--"]

    def ssh_argv(self, remote_command: str) -> list[str]:
        """ssh takes the first value it is given for an option: the runbook's options come
        first, then trail's defaults; both beat the user's config file for those options
        (a dead host must fail the step, not hang it: ServerAlive)."""
        assert self.host is not None
        argv = [ssh_program(), "-T"]
        if self.user is not None:
            argv += ["-l", self.user]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        return [
            *argv, *self.ssh_options,
            "-o", "BatchMode=yes",  # never a password or host-key question nobody sees
            "-o", f"ConnectTimeout={max(1, round(self.connect_timeout))}",
            "-o", f"ServerAliveInterval={max(1, round(self.alive_interval))}",
            "-o", "ServerAliveCountMax=3",
            *sharing_options(self.ssh_options, (self.where, *self.ssh_options)),
            "--", self.host, remote_command,
        ]


def ssh_program() -> str:
    """The ssh client by its full path, looked up once per PATH: a command's exec then
    tries no directory of PATH that lacks it (six failed execs each, here)."""
    return _found_on(os.environ.get("PATH", os.defpath))


@functools.lru_cache(maxsize=8)
def _found_on(path: str) -> str:
    return shutil.which("ssh", path=path) or "ssh"  # missing: running it says so


# Commands each host is expected to get from the trails built in this process, by the
# digest of its identity (see ``sharing_options``): one command is not worth a master
# connection's set-up.
_expected: collections.Counter[str] = collections.Counter()


def expect_commands(steps: Iterable[Any]) -> None:
    """Count the commands the steps of a trail will run on each host (a step that may be
    retried counts twice). Called as a trail is built (TrailServer); a quick no-op in a
    process that never made a remote command."""
    if not Target.remote_made:
        return
    for step in steps:
        target = getattr(step.action_function, "target", None)
        if isinstance(target, Target) and target.host is not None:
            where = (target.where, *target.ssh_options)
            _expected[_digest(where)] += 2 if step.retries else 1


def _digest(identity: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(identity).encode()).hexdigest()[:_DIGEST]


def sharing_options(options: Sequence[str], identity: Sequence[str]) -> list[str]:
    """ssh's connection sharing, unless the runbook's options or the ssh configuration say
    anything of it (ControlMaster, ControlPath, ControlPersist, ``-S``): the first command
    to a host opens a master connection that the next ones use (no new handshake) and that
    ends SHARE_PERSIST seconds after the last; its socket in a directory only this user can
    enter. A config that says anything of sharing is the user's choice, taken as it is
    (``ControlMaster no`` turns it off). Commands share a connection only when their
    ``identity`` (the host as written, user, port and ssh options) is the same: its
    digest names the socket (ssh's own %C does not tell apart two host aliases with
    different keys, and is too long for some socket directories)."""
    if any(option == "-S" or option.lower().removeprefix("-o").startswith(_SHARING)
           for option in options):
        return []
    files = tuple(options[i + 1] for i, option in enumerate(options[:-1]) if option == "-F")
    if _configured(files or (os.path.expanduser("~/.ssh/config"), "/etc/ssh/ssh_config")):
        return []
    directory = _control_dir()
    if directory is None:
        return []
    digest = _digest(identity)
    if _expected.get(digest) == 1:
        # Its only command: opening a master would cost more than it saves (measured: 100
        # hosts, one command each, 1.56x the bare ssh floor with a master, 1.30x without);
        # a master already there (warm) is still used.
        return ["-o", "ControlMaster=no", "-o", f"ControlPath={directory}/{digest}"]
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={directory}/{digest}",
            "-o", f"ControlPersist={SHARE_PERSIST}"]


@functools.lru_cache(maxsize=16)
def _configured(files: tuple[str, ...]) -> bool:
    """True if these ssh config files, or those they include, say anything of sharing."""
    seen: set[str] = set()

    def says(path: str, depth: int) -> bool:
        if path in seen or depth > 8:
            return False
        seen.add(path)
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            return False
        base = os.path.dirname(path)
        for line in text.splitlines():
            words = line.strip().replace("=", " ").split()
            if not words:
                continue
            key = words[0].lower()
            if key in _SHARING:
                return True
            if key == "include":
                for pattern in words[1:]:
                    pattern = os.path.join(base, os.path.expanduser(pattern))
                    if any(says(found, depth + 1) for found in sorted(glob.glob(pattern))):
                        return True
        return False

    return any(says(path, 0) for path in files)


@functools.lru_cache(maxsize=1)
def _control_dir() -> str | None:
    """``ssh`` in this user's private socket directory (made 0700), or None when that
    path is too long for a socket."""
    from trail.layer1.sockets import ensure_private_dir, socket_dir

    directory = socket_dir() / "ssh"
    if len(str(directory)) + 1 + _DIGEST + _SSH_TEMP_SUFFIX > _MAX_SOCKET_PATH:
        log.info("no ssh connection sharing: %s is too long a path for its sockets", directory)
        return None
    try:
        ensure_private_dir(directory)
    except Exception as exc:  # noqa: BLE001 - sharing is an optimisation: go without it
        log.warning("no ssh connection sharing: %s", exc)
        return None
    return str(directory)


def ssh_options_argv(options: Sequence[str] | Mapping[str, object] | None) -> tuple[str, ...]:
    """Extra ssh arguments: a list as given (``["-F", "cfg"]``), a mapping as ``-o k=v``."""
    if options is None:
        return ()
    if isinstance(options, Mapping):
        return tuple(arg for key, value in options.items() for arg in ("-o", f"{key}={value}"))
    if isinstance(options, str):
        return tuple(shlex.split(options))
    return tuple(str(option) for option in options)


# What ssh says on stderr, to a short name of the problem and whether trying again later
# may help (a retry_on can test ``error.transient``). First match wins.
_PROBLEMS: tuple[tuple[str, str, bool], ...] = (
    ("host key verification failed", "host key refused", False),
    ("remote host identification has changed", "host key refused", False),
    ("permission denied", "authentication failed", False),
    ("too many authentication failures", "authentication failed", False),
    ("temporary failure in name resolution", "name not resolved", True),
    ("could not resolve hostname", "name not resolved", False),
    ("connection refused", "connection refused", True),
    ("timed out", "connection timed out", True),
    ("no route to host", "host unreachable", True),
    ("network is unreachable", "host unreachable", True),
    ("not responding", "connection lost", True),
    ("closed by remote host", "connection lost", True),
    ("connection reset", "connection lost", True),
    ("broken pipe", "connection lost", True),
)


def diagnose(ssh_lines: Sequence[str]) -> tuple[str, bool]:
    """(problem, transient) from what ssh printed before it gave up."""
    text = "\n".join(ssh_lines).lower()
    for needle, problem, transient in _PROBLEMS:
        if needle in text:
            return problem, transient
    return "ssh failed", True
