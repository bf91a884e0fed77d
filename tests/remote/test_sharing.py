"""ssh connection sharing by default: one handshake per host for a run's commands, unless
the user's ssh configuration or the runbook says anything of sharing."""

from __future__ import annotations

import subprocess

from tests.support import wait_states
from trail import RemoteCommand, Step


def control_path(argv: list[str]) -> str | None:
    found = [a.split("=", 1)[1] for a in argv if a.startswith("ControlPath=")]
    return found[0] if found else None


def test_commands_to_a_host_share_one_connection_by_default(serve, sshd):
    first = RemoteCommand("first", "true", host="h91", ssh_options=sshd.options)
    argv = first.argv("true")
    path = control_path(argv)
    assert path is not None and "ControlMaster=auto" in argv
    check = ["ssh", *sshd.options, "-o", f"ControlPath={path}", "-O", "check", "h91"]
    try:
        client = serve(Step(first, name="first") >> Step(
            RemoteCommand("second", "true", host="h91", ssh_options=sshd.options),
            name="second"))
        client.start()
        wait_states(client, {"first": "Succeeded", "second": "Succeeded"})
        # The master the first command opened is up, for the next commands to that host.
        assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    finally:
        subprocess.run([*check[:-2], "-O", "exit", "h91"], capture_output=True, timeout=30)


def test_a_config_or_runbook_that_speaks_of_sharing_is_left_as_it_is(sshd, tmp_path):
    config = tmp_path / "config"
    config.write_text(f"Include {sshd.config}\nHost *\n    ControlMaster no\n")
    argv = RemoteCommand("x", "true", host="h1", ssh_options=["-F", str(config)]).argv("true")
    assert control_path(argv) is None and "ControlMaster=auto" not in argv
    argv = RemoteCommand("x", "true", host="h1",
                         ssh_options=[*sshd.options, "-o", "ControlPersist=5"]).argv("true")
    assert control_path(argv) is None
    # Two names for one host with different options never share a connection.
    one = RemoteCommand("x", "true", host="h1", ssh_options=sshd.options).argv("true")
    other = RemoteCommand("x", "true", host="h1", port=22, ssh_options=sshd.options).argv("t")
    assert control_path(one) != control_path(other)


def test_a_host_with_one_command_opens_no_master_but_would_use_one_open(serve, sshd):
    """A master connection costs more to set up than a plain one: a host the trail sends
    one command opens none (100 hosts x one command: 1.56x the bare ssh floor with masters,
    1.30x without), but names the shared path, so a master already open (a run a moment
    ago) is used."""
    only = RemoteCommand("only", "true", host="h93", ssh_options=sshd.options)
    client = serve(Step(only, name="only"))
    argv = only.argv("true")
    path = control_path(argv)
    assert path is not None and "ControlMaster=no" in argv and "ControlMaster=auto" not in argv
    client.start()
    wait_states(client, {"only": "Succeeded"})
    check = ["ssh", *sshd.options, "-o", f"ControlPath={path}", "-O", "check", "h93"]
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0
    # A step that may be retried counts twice: its host shares.
    again = RemoteCommand("again", "true", host="h94", ssh_options=sshd.options)
    serve(Step(again, name="again", retries=1))
    assert "ControlMaster=auto" in again.argv("true")
