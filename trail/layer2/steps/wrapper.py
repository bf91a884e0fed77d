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
- a watcher reads the ssh channel's stdin, on which trail writes nothing more. End of input
  means trail asked the command to stop (it closed the channel, or the step's process
  died), or the local ssh died, or the connection dropped: the watcher then sends the
  group SIGTERM and, after the grace period, SIGKILL to whatever is left;
- the wrapper itself comes on the command's input, one line, then one line of the
  command's environment (``export`` statements), so that neither appears on a command line
  (``ps`` shows those to every user): the command line holds a loader of 35 characters;
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

# What the command line carries (``ps`` shows it to every user of the host): a loader that
# reads the wrapper, one line, from its input and runs it; nothing if the input ends first.
# $1: the marker tag, $2: grace period in tenths of a second, $3: the command (sh text),
# $4: "session" (here: the watcher gets a session of its own) or "subshell" (on a host).
LOADER = 'IFS= read -r w || exit 0; eval "$w"'

# The wrapper, shipped as one line (see ``one_line``). $W holds the watcher. Its second
# line of input holds the command's environment (``export`` statements; none: whoever
# started it is gone, and it runs nothing), set in the command's job alone, so a variable
# named like one of the wrapper's own cannot change what the wrapper does. SIGPIPE is
# ignored so that a marker written to a connection already gone cannot end the wrapper
# before it starts the watcher or waits for the command; the command gets it back.
WRAPPER = """
command -v setsid >/dev/null 2>&1 || {
echo "trail: setsid (util-linux) is not installed on this host" >&2
exit 127
}
tag=$1 ticks=$2
IFS= read -r e || exit 0
trap '' PIPE
exec 3<&0 </dev/null
{ trap - PIPE; eval "$e"; exec setsid /bin/sh -c "$3"; } 3<&- &
pid=$!
if [ "$4" = session ]; then
setsid /bin/sh -c "$W" trail-watcher "$pid" "$ticks" <&3 >/dev/null 2>&1 &
else
(set -- "$pid" "$ticks"; eval "$W") <&3 >/dev/null 2>&1 &
fi
watcher=$!
exec 3<&-
echo "$tag started $pid" >&2
{ wait "$pid"; } 2>/dev/null
status=$?
kill "$watcher" 2>/dev/null
{ wait "$watcher"; } 2>/dev/null
echo "$tag exit $status" >&2
exit "$status"
"""

# $1: the command's pid, which leads its own process group once ``setsid`` has made it;
# $2: the grace in tenths of a second. Here it runs in a session of its own, so that
# signals meant for the wrapper (sudo's group) leave it be; on a host, where nothing
# signals the wrapper's group, as a subshell (a process fewer to start). The input may end
# before the group exists (a stop during start-up): then the process is signalled by its
# pid, and looked after until it is gone.
WATCHER = """
pid=$1 ticks=$2
live='($1 == g || $2 == g) && $3 !~ /^Z/ { f = 1 } END { exit !(f || NR == 0) }'
alive() {
kill -0 -$pid 2>/dev/null || kill -0 $pid 2>/dev/null || return 1
command -v ps >/dev/null 2>&1 || return 0
ps -A -o pid= -o pgid= -o stat= 2>/dev/null | awk -v g="$pid" "$live"
}
signal() { kill -$1 -$pid 2>/dev/null || kill -$1 $pid 2>/dev/null; }
while IFS= read -r _; do :; done
trap '' TERM INT HUP
signal TERM || exit 0
i=0
while alive; do
if [ "$i" -ge "$ticks" ]; then kill -KILL -$pid $pid 2>/dev/null; exit 0; fi
sleep 0.1
i=$((i + 1))
done
"""
# (alive: the command, or a live process in its group, an orphaned zombie not counted; no
# list at all, when ps could not run, counts as maybe alive.)

_OPENS = ("then", "do", "else", "{", "&&", "||", "|", "&")


def one_line(script: str) -> str:
    """``script`` (one statement or compound part per line, no comments) as one line."""
    text = ""
    for line in filter(None, (line.strip() for line in script.splitlines())):
        if text:
            text += " " if text.endswith(_OPENS) else "; "
        text += line
    return text


_SHIPPED = one_line(f"W={shlex.quote(one_line(WATCHER))}\n{WRAPPER}") + "\n"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def inner_script(command: str, cwd: str | None) -> str:
    """The sh text run on the host (or under sudo): change directory, run the command."""
    if cwd is None:
        return command
    return f"cd {shlex.quote(cwd)} || exit 1\n{command}"


def _one_line_value(value: str) -> str:
    """``value`` quoted for sh on one line (a newline written as "$nl")."""
    return '"$nl"'.join(shlex.quote(part) for part in value.split("\n"))


def preamble(env: Mapping[str, str] | None) -> bytes:
    """What the command reads first on its input: the wrapper (for LOADER), then one line
    of ``export`` statements for the command (values never on a command line)."""
    exports = []
    for name, value in (env or {}).items():
        if not _NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
        exports.append(f"export {name}={_one_line_value(str(value))}")
    if any("\n" in str(value) for value in (env or {}).values()):
        exports.insert(0, "nl=$(printf '\\nx'); nl=${nl%x}")  # a fork, only when needed
    line = "; ".join(exports)
    return (_SHIPPED + line + "\n").encode()


def wrapped_argv(target: Target, script: str, tag: str, grace: float) -> list[str]:
    """The wrapper running ``script`` (under sudo when asked): on a host, ssh hands it,
    joined, to the login shell; here, it is run as it is."""
    ticks = max(1, round(grace * 10))
    watcher = "session" if target.host is None else "subshell"
    return [*target.sudo_argv(), "/bin/sh", "-c", LOADER, "trail-wrapper", tag, str(ticks),
            script, watcher]


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
