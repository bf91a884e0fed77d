"""Running a command on another host through the system's OpenSSH client.

No agent: the remote side needs only a POSIX ``sh`` and ``setsid`` (util-linux, on every
Linux). The user's ``~/.ssh/config``, keys and agent apply as for any ``ssh`` they type.

Commands run there under the stop wrapper (``trail.layer2.steps.wrapper``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SSH_FAILED = 255  # ssh's own exit code for its errors


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

    def __post_init__(self) -> None:
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
        argv = ["ssh", "-T"]
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
            "--", self.host, remote_command,
        ]


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
