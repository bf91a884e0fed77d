"""Steps on remote hosts, against a real sshd on loopback (tests/remote/sshd.py): output
streaming, exit codes, hosts that cannot be reached, stopping the remote command, fan-out,
per-host steering, sudo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.remote.sshd import ALIASES
from tests.support import (
    crash_while_running,
    require,
    require_root,
    wait_states,
    wait_until,
)
from trail import HostUnreachableError, RemoteCommand, ShellCommand, Step, on_hosts
from trail.layer2.steps.wrapper import sudo_wants_password


def output(client: Any, name: str) -> list[str]:
    rows = client.status(fields=["Output messages"], name=name)
    return rows[0]["Output messages"] if rows else []


def said(client: Any, name: str, stream: str = "STDOUT") -> list[str]:
    """The lines a command wrote on ``stream``, from the step's output messages."""
    prefix = f"[{stream}] -- "
    return [m[len(prefix):] for m in output(client, name) if m.startswith(prefix)]


def value(client: Any, name: str) -> Any:
    return client.status(fields=["Return value"], name=name)[0]["Return value"]


def pgrep(*args: str) -> list[str]:
    found = subprocess.run([require("pgrep"), *args], capture_output=True, text=True)
    return found.stdout.split()


def remote_group(client: Any, name: str) -> int:
    """The remote command's process group: it prints ``pgid=$$`` first (the command runs
    as the leader of a session of its own)."""
    def seen() -> int | None:
        for line in output(client, name):
            match = re.fullmatch(r"\[STDOUT\] -- pgid=(\d+)", line)
            if match:
                return int(match.group(1))
        return None
    return wait_until(seen, f"{name} to start on the host")


def wait_gone(pgid: int, marker: str | None = None) -> None:
    wait_until(lambda: not pgrep("-g", str(pgid)) and not (marker and pgrep("-f", marker)),
               f"no process of the command left (group {pgid}, marker {marker})")


def test_output_streams_while_the_command_runs_and_the_result_is_returned(serve, sshd):
    flag = Path(f"/tmp/trail-{uuid.uuid4().hex}")
    command = (f"echo first; echo warning >&2; "
               f"while [ ! -e {flag} ]; do sleep 0.05; done; echo last; rm {flag}")
    step = Step(RemoteCommand("stream", command, host="db1", ssh_options=sshd.options),
                name="stream")
    client = serve(step)
    client.start()
    # stdout and stderr come through pipes of their own: either may be read first.
    wait_until(lambda: {"[STDOUT] -- first", "[STDERR] -- warning"} <= set(
        output(client, "stream")), "the first lines while the command still runs")
    assert client.status(fields=["State"])[0]["State"] == "Running"
    flag.touch()
    wait_states(client, {"stream": "Succeeded"})
    assert value(client, "stream").endswith("-- Succeeded with exit code: 0.")
    assert said(client, "stream") == ["first", "last"]
    # The command's stderr, none of trail's markers (a login shell's own noise, such as a
    # .bashrc's, may come first: it is the host's).
    assert said(client, "stream", "STDERR")[-1:] == ["warning"]
    assert not any(line.startswith("trail-") for line in said(client, "stream", "STDERR"))
    messages = output(client, "stream")
    assert messages[0] == f"[Command: {command}] [Host: db1] -- Starting."
    assert messages[-1] == f"[Command: {command}] [Host: db1] -- Succeeded with exit code: 0."


def test_argv_cwd_and_env_reach_the_host_exactly(serve, sshd):
    secret = f"s3cret-{uuid.uuid4().hex}"
    shell = ShellCommand("where", ["sh", "-c", 'pwd; echo "$GREETING"; echo "$1"; '
                                   'echo pgid=$$; sleep 600', "sh", "it's a $HOME `x`"],
                         host="db2", cwd="/tmp",
                         env={"GREETING": "hello there; 'quoted'\nsecond line",
                              "TOKEN": secret},
                         ssh_options=sshd.options)
    client = serve(Step(shell, name="where"))
    client.start()
    pgid = remote_group(client, "where")
    assert [line for line in output(client, "where") if line.startswith("[STDOUT]")][:4] == [
        "[STDOUT] -- /tmp", "[STDOUT] -- hello there; 'quoted'", "[STDOUT] -- second line",
        "[STDOUT] -- it's a $HOME `x`"]
    # The values travel on the wrapper's input: no command line here or there shows one.
    assert pgrep("-f", secret) == []
    client.interrupt(dry_run=False)
    wait_gone(pgid)


def test_env_named_like_the_wrappers_own_variables_reaches_the_command_alone(serve, sshd):
    """The environment is set for the command only: names the stop wrapper uses itself
    (its marker tag, the command's pid, its exit status) change nothing of what trail sees."""
    env = {name: f"mine-{name}" for name in ("tag", "pid", "status", "watcher", "ticks",
                                             "e", "w", "W", "nl", "IFS")}
    command = 'echo "$tag $pid $status $watcher $ticks $e $w $W $nl"; exit 3'
    client = serve(Step(RemoteCommand("vars", command, host="db1", env=env,
                                      ssh_options=sshd.options), name="vars"))
    client.start()
    wait_states(client, {"vars": "Paused due to failure"})
    assert said(client, "vars") == [" ".join(f"mine-{name}" for name in (
        "tag", "pid", "status", "watcher", "ticks", "e", "w", "W", "nl"))]
    assert "Failed with exit code: 3" in value(client, "vars")


def test_the_command_gets_sigpipe_as_usual(serve, sshd):
    """The wrapper ignores SIGPIPE (a marker written to a gone connection must not end
    it); the command must not inherit that: ``yes | head -1`` ends quietly."""
    client = serve(Step(RemoteCommand("pipe", "yes | head -1", host="db1",
                                      ssh_options=sshd.options), name="pipe"))
    client.start()
    wait_states(client, {"pipe": "Succeeded"})
    assert said(client, "pipe") == ["y"]
    assert not any("Broken pipe" in line for line in said(client, "pipe", "STDERR"))


@pytest.mark.parametrize("code", [3, 255])
def test_a_failing_command_reports_its_own_exit_code(serve, sshd, code):
    """255 too: it is the command's, not taken for ssh failing to connect."""
    command = f"echo 'disk full' >&2; exit {code}"
    client = serve(Step(RemoteCommand("fail", command, host="db1", ssh_options=sshd.options),
                        name="fail"))
    client.start()
    wait_states(client, {"fail": "Paused due to failure"})
    assert value(client, "fail") == (
        f"ShellCommandFailedError: [Command: {command}] [Host: db1] -- Failed with exit code: "
        f"{code}, STDERR (Last line): disk full")


def test_exit_codes_the_runbook_accepts_succeed_remotely(serve, sshd):
    shell = RemoteCommand("grep", "exit 1", host="db1", ssh_options=sshd.options,
                          is_exit_code_ignorable=lambda code: code in (0, 1))
    client = serve(Step(shell, name="grep"))
    client.start()
    wait_states(client, {"grep": "Succeeded"})
    assert value(client, "grep").endswith("-- Succeeded with exit code: 1.")


@pytest.mark.parametrize("host, problem, says", [
    ("closed", "connection refused", "Connection refused"),
    ("stranger", "authentication failed", "Permission denied"),
    ("impostor", "host key refused", "Host key verification failed"),
    ("no-such-host.invalid", "name not resolved", "Could not resolve hostname"),
])
def test_a_host_that_cannot_be_reached_is_told_apart_from_a_failed_command(
        serve, sshd, host, problem, says):
    client = serve(Step(RemoteCommand("reach", "true", host=host, ssh_options=sshd.options),
                        name="reach"))
    client.start()
    # A resolver that must time out on the unknown name may take a while: be generous.
    wait_states(client, {"reach": "Paused due to failure"}, timeout=90)
    text = value(client, "reach")
    assert text.startswith(f"HostUnreachableError: [Command: true] [Host: {host}] -- Could "
                           f"not reach the host ({problem}): ")
    assert says in text
    assert "exit code" not in text


@pytest.mark.parametrize("host, attempts", [("closed", 3), ("stranger", 1)])
def test_retry_on_can_retry_a_refused_connection_but_not_a_refused_key(
        serve, sshd, host, attempts):
    step = Step(RemoteCommand("r", "true", host=host, ssh_options=sshd.options), name="r",
                retries=2, retry_delay=0.01,
                retry_on=lambda error: isinstance(error, HostUnreachableError)
                and error.transient)
    client = serve(step)
    client.start()
    wait_states(client, {"r": "Paused due to failure"})
    started = [m for m in output(client, "r") if m.endswith("-- Starting.")]
    assert len(started) == attempts


@pytest.mark.parametrize("ignores_term", [False, True])
def test_interrupt_leaves_no_process_on_the_host(serve, sshd, executor, ignores_term):
    """The command and its children, even one that ignores SIGTERM (killed after the
    grace period), are gone from the host, not only the local ssh."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    trap = "trap '' TERM; " if ignores_term else ""
    command = (f"echo pgid=$$; {trap}sh -c 'sleep 600; :' {marker} & "
               f"sh -c 'sleep 600; :' {marker}-2; wait")
    shell = RemoteCommand("long", command, host="db1", ssh_options=sshd.options,
                          kill_grace=0.5)
    client = serve(Step(shell, name="long"), executor=executor)
    client.start()
    pgid = remote_group(client, "long")
    children = f"sleep 600; : {marker}"  # as their command lines read, unquoted
    wait_until(lambda: len(pgrep("-f", children)) == 2, "both remote children to start")
    client.interrupt(dry_run=False)
    wait_states(client, {"long": "Interrupted"})
    wait_gone(pgid, marker)


def test_a_shared_connection_controlmaster_keeps_the_same_stop(serve, sshd):
    """With ssh's connection sharing (a ControlMaster in the user's config, common for
    fleets) the step's ssh is a client of the master: stopping it still stops the command
    on the host, and the shared connection stays up for the next step."""
    short = tempfile.mkdtemp(prefix="cm-", dir="/tmp")  # a socket path: ~100 bytes at most
    shared = [*sshd.options, "-o", "ControlMaster=auto", "-o", f"ControlPath={short}/%C",
              "-o", "ControlPersist=30"]
    marker = f"trail-mark-{uuid.uuid4().hex}"
    first = Step(RemoteCommand("warm", "true", host="db2", ssh_options=shared), name="warm")
    long = Step(RemoteCommand("long", f"echo pgid=$$; sh -c 'sleep 600; :' {marker}",
                              host="db2", ssh_options=shared), name="long")
    client = serve(first >> long)
    try:
        client.start()
        pgid = remote_group(client, "long")
        client.interrupt(dry_run=False)
        wait_states(client, {"long": "Interrupted"})
        wait_gone(pgid, marker)
        check = subprocess.run(["ssh", *shared, "-O", "check", "db2"], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stderr  # the master lives on
    finally:
        subprocess.run(["ssh", *shared, "-O", "exit", "db2"], capture_output=True, timeout=30)
        shutil.rmtree(short, ignore_errors=True)


def test_timeout_stops_the_remote_command_which_may_still_clean_up(serve, sshd):
    marker = f"trail-mark-{uuid.uuid4().hex}"
    command = (f"echo pgid=$$; trap 'echo cleaning up; exit 7' TERM; "
               f"sh -c 'sleep 600; :' {marker} & wait")
    shell = RemoteCommand("slow", command, host="db1", ssh_options=sshd.options, timeout=1.5)
    client = serve(Step(shell, name="slow"))
    client.start()
    pgid = remote_group(client, "slow")
    wait_states(client, {"slow": "Paused due to failure"})
    text = value(client, "slow")
    assert "[Host: db1] -- Timed out after 1.5 s" in text
    assert "[STDOUT] -- cleaning up" in output(client, "slow")  # it was asked, on the host
    wait_gone(pgid, marker)


def test_a_lost_connection_fails_the_step_clearly_and_the_run_goes_on(serve, sshd):
    marker = f"trail-mark-{uuid.uuid4().hex}"
    flag = Path(f"/tmp/trail-{uuid.uuid4().hex}")
    command = (f"if [ -e {flag} ]; then echo second try; exit 0; fi; "
               f"echo pgid=$$; sh -c 'sleep 600; :' {marker}")
    step = Step(RemoteCommand("cut", command, host="db3", ssh_options=sshd.options),
                name="cut")
    after = Step(lambda env, ctx: "after", name="after")
    client = serve([(step, after)])
    client.start()
    pgid = remote_group(client, "cut")
    sshd.drop_connections()
    wait_states(client, {"cut": "Paused due to failure"})
    text = value(client, "cut")
    assert text.startswith(f"HostUnreachableError: [Command: {command}] [Host: db3] -- Lost "
                           "the connection to the host while the command ran (connection "
                           "lost)")
    wait_gone(pgid, marker)  # the host noticed too, and stopped the command
    flag.touch()
    try:
        client.resume(dry_run=False, name="cut")  # the operator tries again
        wait_states(client, {"cut": "Succeeded", "after": "Succeeded"})
        assert said(client, "cut")[-1:] == ["second try"]
    finally:
        flag.unlink()


def test_fan_out_runs_each_host_once_and_never_more_than_the_limit(serve, sshd, tmp_path):
    log = tmp_path / "log"
    steps = on_hosts(ALIASES, lambda host: f"echo start >> {log}; sleep 0.4; "
                     f"echo end >> {log}; echo {host}", per_host=True, name="restart",
                     limit=2, ssh_options=sshd.options)
    assert [s.name for s in steps] == ["restart@db1", "restart@db2", "restart@db3"]
    done = Step(lambda env, ctx: "all restarted", name="done")
    client = serve(steps >> done)
    client.start()
    wait_states(client, {"done": "Succeeded"})
    for host in ALIASES:
        assert said(client, f"restart@{host}") == [host]
    running = peak = 0
    events = log.read_text().split()
    for event in events:
        running += 1 if event == "start" else -1
        peak = max(peak, running)
    assert events.count("start") == 3 and events.count("end") == 3
    assert peak <= 2


def test_pause_and_skip_one_host_of_a_fan_out(serve, sshd):
    steps = on_hosts(ALIASES, "hostname", name="drain", ssh_options=sshd.options)
    client = serve(steps)
    assert [row["Name"] for row in client.status(host="db2")] == ["drain@db2"]
    assert [s["name"] for s in client.pause(dry_run=False, host="db2")] == ["drain@db2"]
    assert [s["name"] for s in client.skip(dry_run=False, host="db3")] == ["drain@db3"]
    client.start()
    wait_states(client, {"drain@db1": "Succeeded", "drain@db2": "Paused",
                         "drain@db3": "Skipped"})
    client.resume(dry_run=False, host="db2")
    wait_states(client, {"drain@db2": "Succeeded"})


def test_fan_out_rejects_what_it_cannot_run():
    with pytest.raises(ValueError, match="more than once.*db1"):
        on_hosts(["db1", "db2", "db1"], "true", name="x")
    with pytest.raises(ValueError, match="no hosts"):
        on_hosts([], "true", name="x")
    with pytest.raises(ValueError, match="not a host name"):
        on_hosts(["-oProxyCommand=evil"], "true", name="x")


def test_fan_out_options_go_to_the_command_or_the_step():
    [step] = on_hosts(["db1"], "true", name="x", user="deploy", port=2222, retries=2,
                      timeout=30, team="storage")
    assert step.tags["host"] == "db1" and step.tags["team"] == "storage"
    assert step.retries == 2
    shell = step.action_function
    assert (shell.target.user, shell.target.port, shell.timeout) == ("deploy", 2222, 30)


def test_sudo_runs_the_command_as_the_user_and_interrupt_still_stops_it(serve, sshd):
    require_root()
    marker = f"trail-mark-{uuid.uuid4().hex}"
    command = f"id -un; echo pgid=$$; sh -c 'sleep 600; :' {marker}"
    shell = RemoteCommand("as nobody", command, host="db1", sudo_user="nobody",
                          ssh_options=sshd.options)
    client = serve(Step(shell, name="as nobody"))
    client.start()
    pgid = remote_group(client, "as nobody")
    assert "[STDOUT] -- nobody" in output(client, "as nobody")
    owners = subprocess.run(["ps", "-o", "user=", "-g", str(pgid)], capture_output=True,
                            text=True).stdout.split()
    assert owners and set(owners) == {"nobody"}
    client.interrupt(dry_run=False)
    wait_states(client, {"as nobody": "Interrupted"})
    wait_gone(pgid, marker)


def test_sudo_that_cannot_start_the_command_fails_clearly(serve, sshd):
    require_root()
    shell = RemoteCommand("sudo", "true", host="db1", sudo_user="no-such-user-here",
                          ssh_options=sshd.options)
    client = serve(Step(shell, name="sudo"))
    client.start()
    wait_states(client, {"sudo": "Paused due to failure"})
    text = value(client, "sudo")
    assert "[Host: db1] -- Did not start on the host (exit code 1)" in text
    assert "sudo: unknown user no-such-user-here" in "\n".join(output(client, "sudo"))


def test_sudo_never_prompts_and_a_password_demand_is_recognised(tmp_path):
    """trail runs ``sudo -n``: asked as a user with no sudo rights, the installed sudo
    fails at once rather than prompt, and what it says is what trail recognises."""
    require_root()
    result = subprocess.run(
        [require("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         *ShellCommand("s", "true", sudo=True).argv("true")],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert sudo_wants_password(result.stderr.splitlines()), result.stderr


def test_ssh_takes_the_users_config_and_the_runbooks_options_over_trails_defaults(sshd):
    """What ssh will use, as ``ssh -G`` reports it for the very argv trail runs: the
    config file's host entry, the runbook's ConnectTimeout rather than trail's default,
    and trail's BatchMode and keep-alive where nobody said otherwise."""
    command = RemoteCommand("x", "true", host="db1", user="deploy",
                            ssh_options=[*sshd.options, "-o", "ConnectTimeout=3"])
    argv = command.argv("true")
    result = subprocess.run([argv[0], "-G", *argv[1:]], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    settings = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert settings["hostname"] == "127.0.0.1" and settings["port"] == str(sshd.port)
    assert settings["user"] == "deploy"
    assert settings["connecttimeout"] == "3"
    assert settings["batchmode"] == "yes" and settings["serveraliveinterval"] == "15"


def test_host_options_are_checked_when_the_runbook_loads():
    with pytest.raises(ValueError, match="not a host name"):
        ShellCommand("x", "true", host="db1 -oProxyCommand=x")
    with pytest.raises(ValueError, match="need a host"):
        ShellCommand("x", "true", user="root")
    with pytest.raises(ValueError, match="not a port"):
        ShellCommand("x", "true", host="db1", port=70000)


def test_a_crashed_server_leaves_no_process_on_the_host(sshd, tmp_path):
    """SIGKILL the `trail run` process: its step dies with it, the local ssh reads end of
    input, the channel closes, and the host stops the command."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    book = tmp_path / "book.py"
    book.write_text(
        "from trail import RemoteCommand, Step\n"
        f"trail = Step(RemoteCommand('long', \"echo pgid=$$; sh -c 'sleep 600; :' {marker}\",\n"
        f"                           host='db1', ssh_options={sshd.options!r}), name='long')\n")
    pgid = crash_while_running(book, tmp_path / "journal.sqlite3")
    wait_gone(pgid, marker)


REMOTE_ORPHAN_STEPS = int(os.environ.get("TRAIL_REMOTE_ORPHAN_STEPS", "12"))


def test_no_remote_orphans_after_many_interrupts_and_timeouts(serve, sshd):
    """Many remote commands at once over the three "hosts", half interrupted, half timed
    out (each with a child that ignores SIGTERM): none of their processes is left."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    # ssh's handshakes take CPU: give every command time to start before its timeout.
    timeout = 4.0 + 0.5 * REMOTE_ORPHAN_STEPS
    steps = []
    for i in range(REMOTE_ORPHAN_STEPS):
        command = f"sh -c 'trap \"\" TERM; sleep 600; :' {marker}-{i} & sleep 600"
        options = {"timeout": timeout} if i % 2 else {}
        steps.append(Step(RemoteCommand(f"r{i}", command, host=ALIASES[i % len(ALIASES)],
                                        ssh_options=sshd.options, kill_grace=0.5, **options),
                          name=f"r{i}"))
    client = serve(steps)
    client.start()
    children = f"sleep 600; : {marker}-"
    wait_until(lambda: len(pgrep("-f", children)) == REMOTE_ORPHAN_STEPS,
               "every command's child to start", timeout=timeout)
    for i in range(0, REMOTE_ORPHAN_STEPS, 2):
        client.interrupt(dry_run=False, name=f"r{i}")
    wait_states(client, {f"r{i}": ("Paused due to failure" if i % 2 else "Interrupted")
                         for i in range(REMOTE_ORPHAN_STEPS)}, timeout=60 + timeout)
    wait_until(lambda: not pgrep("-f", marker), "no process of any command left")
