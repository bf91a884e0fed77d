"""Running a command on another host through the system's OpenSSH client.

No agent: the remote side needs only a POSIX ``sh`` and ``setsid`` (util-linux, on every
Linux). The user's ``~/.ssh/config``, keys and agent apply as for any ``ssh`` they type.

How a remote command is stopped
-------------------------------
ssh without a terminal does not pass a hang-up to the remote command: kill the local
``ssh`` and the command goes on running on the host. A terminal (``ssh -tt``) would pass
the hang-up, but it merges stderr into stdout, rewrites line ends, and reaches only the
foreground job (a ``nohup`` or backgrounded child survives). So trail runs a small wrapper
script on the host instead:

- the command starts in a session of its own (``setsid``), so its whole process group,
  children included, can be signalled;
- a watcher, in a session of its own, reads the ssh channel's stdin, on which trail writes
  nothing more. End of input means trail asked the command to stop (it closed the channel, or
  the step's process died), or the local ssh died, or the connection dropped: the watcher
  then sends the group SIGTERM and, after the grace period, SIGKILL to whatever is left;
- before that, the wrapper reads the command's environment from its input, up to a "go"
  line, so that no value appears on a command line (``ps`` shows those to every user);
- markers on stderr (with a per-run random tag, hidden from the operator) say that the
  command started and with which exit code it ended. So a lost connection (no end marker)
  is told apart from a command that exits 255, which ssh alone cannot do.

The remote account's login shell must understand POSIX quoting (sh, bash, dash, ksh, zsh).

The same wrapper runs every command on this machine too (where ``setsid`` is): under sudo,
as another user, the command is out of reach of the server's signals, but not of a watcher
running as that user; and any command stops when its step's process dies, even when the
whole server was killed.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SSH_FAILED = 255  # ssh's own exit code for its errors

# $1: the marker tag, $2: grace period in tenths of a second, $3: the command (sh text),
# $4: WATCHER.
WRAPPER = """
command -v setsid >/dev/null 2>&1 || {
    echo "trail: setsid (util-linux) is not installed on this host" >&2; exit 127; }
tag=$1 ticks=$2
# First on the input: the environment to set, up to a "go" line (so that no value is on a
# command line, where ps shows it). No "go": whoever started us is gone; run nothing.
env= go=
while IFS= read -r line; do
    if [ "$line" = "$tag go" ]; then go=1; break; fi
    env="$env$line
"
done
[ -n "$go" ] || exit 0
eval "$env"
exec 3<&0 </dev/null
setsid /bin/sh -c "$3" 3<&- &
pid=$!
echo "$tag started $pid" >&2
setsid /bin/sh -c "$4" trail-watcher "$pid" "$ticks" <&3 >/dev/null 2>&1 &
watcher=$!
exec 3<&-
{ wait "$pid"; } 2>/dev/null; status=$?
kill "$watcher" 2>/dev/null; { wait "$watcher"; } 2>/dev/null
echo "$tag exit $status" >&2
exit "$status"
"""

# In a session of its own, so signals meant for the wrapper (sudo's group here) leave it
# be. $1: the command's process group, $2: the grace in tenths of a second.
WATCHER = """
pid=$1 ticks=$2
alive() {  # a live process in the group (an orphaned zombie waiting for init is not)
    kill -0 -$pid 2>/dev/null || return 1
    command -v ps >/dev/null 2>&1 || return 0
    ps -A -o pgid= -o stat= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}
while IFS= read -r _; do :; done
trap '' TERM INT HUP
kill -TERM -$pid 2>/dev/null || exit 0
i=0
while alive; do
    if [ "$i" -ge "$ticks" ]; then kill -KILL -$pid 2>/dev/null; exit 0; fi
    sleep 0.1; i=$((i + 1))
done
"""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


def inner_script(command: str, cwd: str | None) -> str:
    """The sh text run on the host (or under sudo): change directory, run the command."""
    if cwd is None:
        return command
    return f"cd {shlex.quote(cwd)} || exit 1\n{command}"


def preamble(tag: str, env: Mapping[str, str] | None) -> bytes:
    """What the wrapper reads first on its input: ``export`` lines, then "go"."""
    lines = []
    for name, value in (env or {}).items():
        if not _NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
        lines.append(f"export {name}={shlex.quote(str(value))}\n")
    lines.append(f"{tag} go\n")
    return "".join(lines).encode()


def wrapped_argv(target: Target, script: str, tag: str, grace: float) -> list[str]:
    """The wrapper running ``script`` (under sudo when asked): on a host, ssh hands it,
    joined, to the login shell; here, it is run as it is."""
    ticks = max(1, round(grace * 10))
    return [*target.sudo_argv(), "/bin/sh", "-c", WRAPPER, "trail-wrapper", tag, str(ticks),
            script, WATCHER]


def new_tag() -> str:
    return f"trail-{secrets.token_hex(6)}"


@dataclass
class Markers:
    """What the wrapper said on stderr: the remote process group and the exit code."""

    tag: str
    pgid: int | None = None
    exit_code: int | None = None

    def take(self, line: str) -> bool:
        """True if ``line`` is a marker (then it is recorded, and not the command's)."""
        if not line.startswith(self.tag + " "):
            return False
        word, _, number = line[len(self.tag) + 1:].partition(" ")
        if not number.isdigit():
            return False
        if word == "started":
            self.pgid = int(number)
        elif word == "exit":
            self.exit_code = int(number)
        else:
            return False
        return True

    @property
    def started(self) -> bool:
        return self.pgid is not None


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


SUDO_PASSWORD = ("a password is required", "a terminal is required", "no askpass program")


def sudo_wants_password(lines: Sequence[str]) -> bool:
    """True if sudo's messages say it would have asked for a password."""
    return any(line.startswith("sudo:") and any(text in line for text in SUDO_PASSWORD)
               for line in lines)
