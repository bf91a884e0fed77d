"""Stopping a fleet-wide step at any moment, connection set-up included, leaves nothing
running on any host (tests/remote/sshd.py: every host is this machine, so pgrep sees them)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.remote.sshd import fleet
from tests.remote.test_ssh import pgrep
from tests.support import states, wait_until
from trail import RemoteCommand, Step, Stopped
from trail.layer2.steps.ssh import Target
from trail.layer2.steps.wrapper import new_tag, preamble, wrapped_argv

HOSTS = int(os.environ.get("TRAIL_FLEET_STOP_HOSTS", "6"))
DELAYS_MS = (0, 10, 20, 40, 60, 90, 130, 180, 250, 350)


def test_a_stop_at_any_moment_of_connection_set_up_leaves_nothing_on_any_host(serve, sshd):
    """One command on each host; ``stop`` after 0, 5, 10, ... ms: while ssh connects,
    authenticates, starts the wrapper, hands it the environment, or after the command
    started. Whenever the stop comes, no process of any command is left on any host."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    hosts = fleet(HOSTS)
    for delay in DELAYS_MS:
        steps = [Step(RemoteCommand(host, f"uname -n; sh -c 'sleep 30; :' {marker}-{delay}",
                                    host=host, ssh_options=sshd.options, kill_grace=0.5),
                      name=host) for host in hosts]
        client = serve(steps)
        client.start()
        time.sleep(delay / 1000)
        client.stop(dry_run=False)
        wait_until(lambda: "Running" not in states(client).values(),  # noqa: B023
                   "every step to stop")
        client.shutdown(dry_run=False)
    assert_nothing_left(marker)


def assert_nothing_left(marker: str) -> None:
    """A command stops within its grace period; one left behind would run for 30 s."""
    try:
        wait_until(lambda: not pgrep("-f", marker), "no process of any command left",
                   timeout=10)
    except AssertionError:
        left = subprocess.run(["pgrep", "-af", marker], capture_output=True,
                              text=True).stdout.splitlines()
        raise AssertionError(f"{len(left)} remote processes outlived the stop:\n"
                             + "\n".join(left)) from None


@pytest.mark.parametrize("stderr", ["broken", "open"])
def test_a_connection_gone_as_the_command_starts_still_stops_it(stderr):
    """The moment a stop during set-up can hit: the wrapper has its "go", the channel then
    closes. Its input is at its end before the command's group exists, and its stderr may
    be a broken pipe already (the "started" marker cannot be written). The wrapper is run
    as ssh would run it on a host; the command it starts must still be stopped, every
    time."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    wrappers = []
    readers: list[int] = []
    for i in range(20):
        tag = new_tag()
        argv = wrapped_argv(Target(), f"sh -c 'sleep 30; :' {marker}-{i}", tag, 0.5)
        read_end, write_end = os.pipe()
        if stderr == "broken":
            os.close(read_end)  # whoever read the wrapper's stderr is gone
        else:
            readers.append(read_end)
        wrapper = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=write_end, start_new_session=True)
        os.close(write_end)
        assert wrapper.stdin is not None
        wrapper.stdin.write(preamble(None))
        wrapper.stdin.close()  # ... and the channel closes
        wrappers.append(wrapper)
    for wrapper in wrappers:
        wrapper.wait(30)
    for read_end in readers:
        os.close(read_end)
    assert_nothing_left(marker)


def test_a_background_trail_run_stops_on_sigterm_and_says_sigint_is_ignored(sshd, tmp_path):
    """`trail run ... &` in a script: the shell starts it with SIGINT ignored (so the
    terminal's Ctrl-C leaves it be), which trail keeps and says, naming what does stop it.
    SIGTERM stops it: exit 3, and nothing left on any host."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    hosts = fleet(8)
    book = tmp_path / "book.py"
    book.write_text(
        "from trail import RemoteCommand, Step\n"
        f"trail = [Step(RemoteCommand(h, \"sh -c 'sleep 30; :' {marker}\", host=h,\n"
        f"                            ssh_options={sshd.options!r}, kill_grace=0.5),\n"
        f"              name=h) for h in {hosts!r}]\n")
    out = tmp_path / "out"
    trail_run = shlex.join([sys.executable, "-m", "trail", "run", str(book), "--plain",
                            "--journal", str(tmp_path / "journal.sqlite3")])
    script = subprocess.Popen(
        ["sh", "-c", f"{trail_run} >{out} 2>&1 & echo $!; wait $!"],
        stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        assert script.stdout is not None
        pid = int(script.stdout.readline())
        wait_until(lambda: len(pgrep("-f", f"sleep 30; : {marker}")) == len(hosts),
                   "every host's command to start")
        assert f"note: SIGINT is ignored here (started in the background by a script): " \
               f"stop this run with SIGTERM (kill {pid})" in out.read_text()
        os.kill(pid, signal.SIGTERM)
        assert script.wait(30) == 3, out.read_text()
        # Each host said its command ended before trail let go.
        assert f"{len(hosts)} of {len(hosts)} host(s) confirmed the stop" in out.read_text()
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    assert_nothing_left(marker)


def test_a_stop_says_which_hosts_confirmed_that_their_command_ended(serve, sshd, executor):
    """Each host's step reports how its stop went, in a ``stopped`` event once its run is
    over: confirmed where the host's wrapper said the command ended, not confirmed where
    no word came (here a host whose connection never gets set up: its ssh hangs in a
    proxy command until trail's signals end it). On a Dask worker too: the worker's agent
    gives the step the time it asked for to stop its commands itself."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    hosts = fleet(3)  # and the hung one: 4 steps at once, as many as the Dask cluster runs
    steps = [Step(RemoteCommand(host, f"sh -c 'sleep 30; :' {marker}", host=host,
                                ssh_options=sshd.options, kill_grace=0.5), name=host)
             for host in hosts]
    steps.append(Step(RemoteCommand("hung", "true", host="h9", kill_grace=0.5,
                                    ssh_options=[*sshd.options, "-o", "ProxyCommand=sleep 60"]),
                      name="hung"))
    client = serve(steps, executor=executor)
    with client.subscribe() as stream:
        client.start()
        wait_until(lambda: len(pgrep("-f", f"sleep 30; : {marker}")) == len(hosts),
                   "every host's command to start")
        wait_until(lambda: client.status(name="hung", fields=["Output messages"])[0][
            "Output messages"], "the hung step to start its ssh")
        stopped = {step["name"] for step in client.stop(dry_run=False)}
        assert stopped == {*hosts, "hung"}
        seen: dict[str, Stopped] = {}
        deadline = time.monotonic() + 30
        while len(seen) < len(stopped) and time.monotonic() < deadline:
            event = stream.next(1)
            if isinstance(event, Stopped):
                seen[event.name] = event
    assert set(seen) == stopped
    for host in hosts:
        (report,) = seen[host].reports
        assert report["where"] == host and report["confirmed"], report
        assert report["detail"].startswith("the command ended (exit code"), report
        assert seen[host].ended
    (report,) = seen["hung"].reports
    assert report["where"] == "h9" and not report["confirmed"], report
    # The step's output says it too, and so does the journal's copy of it.
    output = client.status(name=hosts[0], fields=["Output messages"])[0]["Output messages"]
    assert any(line.startswith(f"[trail] stopped on {hosts[0]}: the command ended")
               for line in output), output
    assert_nothing_left(marker)


def test_trail_stop_says_how_many_hosts_confirmed_it(serve, sshd):
    """`trail stop --yes` waits for the stopped runs to end and counts the hosts."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    hosts = fleet(3)
    client = serve([Step(RemoteCommand(host, f"sh -c 'sleep 30; :' {marker}", host=host,
                                       ssh_options=sshd.options, kill_grace=0.5), name=host)
                    for host in hosts])
    client.start()
    wait_until(lambda: len(pgrep("-f", f"sleep 30; : {marker}")) == len(hosts),
               "every host's command to start")
    done = subprocess.run([sys.executable, "-m", "trail", "stop", "--socket",
                           client.server.socket_file, "--yes"],  # type: ignore[attr-defined]
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.returncode == 0, done.stderr
    assert "3 of 3 host(s) confirmed the stop" in done.stdout, done.stdout
    assert_nothing_left(marker)


def test_the_command_line_on_the_host_is_short_the_wrapper_comes_on_input(serve, sshd):
    """What ``ps`` shows on the host: the command and a loader of about a hundred
    characters, for the wrapper and for its watcher (a subshell of it); the stop wrapper
    and the watcher's code travel on the command's input."""
    marker = f"trail-mark-{uuid.uuid4().hex}"
    step = Step(RemoteCommand("nap", f"sh -c 'sleep 30; :' {marker}", host="h1",
                              ssh_options=sshd.options, kill_grace=0.5), name="nap")
    client = serve(step)
    client.start()
    wait_until(lambda: pgrep("-f", f"sleep 30; : {marker}"), "the command to start")

    def wrapper_lines() -> list[str]:
        lines = subprocess.run(["ps", "-ewwo", "args"], capture_output=True,
                               text=True).stdout.splitlines()
        return [line for line in lines if line.startswith("/bin/sh -c")
                and "trail-wrapper" in line and marker in line]
    # The wrapper and its watcher: two processes, one command line.
    lines = wait_until(lambda: (lambda seen: seen if len(seen) == 2 else [])(wrapper_lines()),
                       "the wrapper and its watcher")
    assert all(len(line) < 120 + len(marker) for line in lines), lines
    assert not any("setsid" in line or "kill" in line for line in lines), lines
    client.stop(dry_run=False)
    assert_nothing_left(marker)
