"""A rolling restart across a fleet, over SSH: check every host, then restart one host at
a time, then verify them all.

    TRAIL_HOSTS="web1 web2 web3" trail run examples/fleet.py

Hosts are names your ssh knows (``~/.ssh/config`` aliases, keys and agent apply);
``TRAIL_SSH_CONFIG`` points ssh at another config file (the tests use one for their own
sshd). The commands are harmless stand-ins (``uptime``, an echo and a sleep): put your
``systemctl restart app`` in their place and the runbook stays the same.

Steer one host by its tag while it runs: ``trail pause host=web2 --yes`` holds that
host's restart; ``trail skip host=web3 --yes`` leaves it out.
"""

from __future__ import annotations

import os

from trail import HostUnreachableError, Instruction, Step, on_hosts

hosts = os.environ.get("TRAIL_HOSTS", "db1 db2 db3").split()
config = os.environ.get("TRAIL_SSH_CONFIG")
ssh = {"ssh_options": ["-F", config]} if config else {}


def worth_retrying(error: BaseException) -> bool:
    """A host that refused or dropped the connection may be back in a moment; a refused
    key or an unknown name will not be."""
    return isinstance(error, HostUnreachableError) and error.transient


preflight = on_hosts(hosts, "uptime", name="preflight", phase="check", retries=2,
                     retry_delay=2, retry_on=worth_retrying, **ssh)
go_ahead = Step(Instruction("go_ahead", f"Every host answered. Restart {len(hosts)} hosts, "
                            "one at a time? Reply True to go on."),
                name="go_ahead", phase="check")
restart = on_hosts(
    hosts,
    'echo "stopping app on $(hostname)"; sleep 1; echo "app started"',
    name="restart", limit=1, phase="restart", timeout=300, **ssh,
)
verify = on_hosts(hosts, 'echo "app healthy on $(hostname)"', name="verify",
                  phase="verify", **ssh)

trail = [
    *(preflight >> go_ahead >> restart),
    *((step, check) for step, check in zip(restart, verify, strict=True)),
]

ANSWERS = {"go_ahead": True}
