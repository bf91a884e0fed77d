"""The stop wrapper: every command trail runs, here or on a host, runs under it.

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

from trail.layer2.steps.ssh import Target

# What the command line carries (``ps`` shows it to every user of the host): a short
# loader that reads the wrapper from its input, up to an end line, and runs it; nothing if
# the input ends first. $1: the marker tag, $2: grace period in tenths of a second, $3: the
# command (sh text).
LOADER = ("nl=$(printf '\\nx'); nl=${nl%x}; w=; while IFS= read -r l; do "  # one ps line
          '[ "$l" = "$1 end" ] && { eval "$w"; exit; }; w="$w$l$nl"; done; exit 0')

# The wrapper, sent on the command's input (see ``preamble``); $watcher holds WATCHER.
WRAPPER = """
command -v setsid >/dev/null 2>&1 || {
    echo "trail: setsid (util-linux) is not installed on this host" >&2; exit 127; }
tag=$1 ticks=$2
# A marker is written by a subshell: if the connection is gone, SIGPIPE ends that subshell,
# never the wrapper (which must go on to start the watcher, or wait for the command).
say() { (echo "$tag $1" >&2); }
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
TRAIL_WATCHER=$watcher setsid /bin/sh -c 'eval "$TRAIL_WATCHER"' trail-watcher "$pid" \\
    "$ticks" <&3 >/dev/null 2>&1 &
watcher=$!
exec 3<&-
say "started $pid"
{ wait "$pid"; } 2>/dev/null; status=$?
kill "$watcher" 2>/dev/null; { wait "$watcher"; } 2>/dev/null
say "exit $status"
exit "$status"
"""

# In a session of its own, so signals meant for the wrapper (sudo's group here) leave it
# be. $1: the command's pid, which leads its own process group once ``setsid`` has made
# it; $2: the grace in tenths of a second. The input may end before that (a stop during
# start-up): then the process is signalled by its pid, and looked after until it is gone.
WATCHER = """
pid=$1 ticks=$2
alive() {  # the command, or a live process in its group (an orphaned zombie is not)
    kill -0 -$pid 2>/dev/null || kill -0 $pid 2>/dev/null || return 1
    command -v ps >/dev/null 2>&1 || return 0
    ps -A -o pid= -o pgid= -o stat= 2>/dev/null | awk -v g="$pid" '
        ($1 == g || $2 == g) && $3 !~ /^Z/ { f = 1 }
        END { exit !(f || NR == 0) }'  # no list at all (ps could not run): maybe alive
}
signal() { kill -$1 -$pid 2>/dev/null || kill -$1 $pid 2>/dev/null; }
while IFS= read -r _; do :; done
trap '' TERM INT HUP
signal TERM || exit 0
i=0
while alive; do
    if [ "$i" -ge "$ticks" ]; then kill -KILL -$pid $pid 2>/dev/null; exit 0; fi
    sleep 0.1; i=$((i + 1))
done
"""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def inner_script(command: str, cwd: str | None) -> str:
    """The sh text run on the host (or under sudo): change directory, run the command."""
    if cwd is None:
        return command
    return f"cd {shlex.quote(cwd)} || exit 1\n{command}"


def preamble(tag: str, env: Mapping[str, str] | None) -> bytes:
    """What the command reads first on its input: the wrapper (for LOADER), then the
    wrapper's ``export`` lines, then "go"."""
    lines = [f"watcher={shlex.quote(WATCHER)}\n", WRAPPER.lstrip("\n"), f"{tag} end\n"]
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
    return [*target.sudo_argv(), "/bin/sh", "-c", LOADER, "trail-wrapper", tag, str(ticks),
            script]


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


SUDO_PASSWORD = ("a password is required", "a terminal is required", "no askpass program")


def sudo_wants_password(lines: Sequence[str]) -> bool:
    """True if sudo's messages say it would have asked for a password."""
    return any(line.startswith("sudo:") and any(text in line for text in SUDO_PASSWORD)
               for line in lines)
