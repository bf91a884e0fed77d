"""A rolling restart across a fleet, over SSH: check every host, then restart and verify
one canary host, then the rest a batch at a time (20% of the fleet per batch), each host
verified before the next batch starts.

    TRAIL_HOSTS="web1 web2 web3" trail run examples/fleet.py

Hosts are names your ssh knows (``~/.ssh/config`` aliases, keys and agent apply);
``TRAIL_SSH_CONFIG`` points ssh at another config file (the tests use one for their own
sshd), given once for the whole fleet. The commands are harmless stand-ins (``uptime``, an
echo and a sleep): put your ``systemctl restart app`` in their place and the runbook stays
the same.

If a host of a batch fails, the rollout stops at that batch's gate (``deploy/batch2``) and
asks whether to go on; a failing canary stops it. Steer while it runs:
``trail pause batch=3 --yes`` holds the third batch; ``trail skip host=web3 --yes`` leaves
that host out.
"""

from __future__ import annotations

import os

from trail import Hosts, HostUnreachableError, Instruction, Step

config = os.environ.get("TRAIL_SSH_CONFIG")
fleet = Hosts(os.environ.get("TRAIL_HOSTS", "db1 db2 db3").split(),
              **({"ssh_options": ["-F", config]} if config else {}))


def worth_retrying(error: BaseException) -> bool:
    """A host that refused or dropped the connection may be back in a moment; a refused
    key or an unknown name will not be."""
    return isinstance(error, HostUnreachableError) and error.transient


preflight = fleet.on_hosts("uptime", name="preflight", retries=2, retry_delay=2,
                           retry_on=worth_retrying)
go_ahead = Step(Instruction("go_ahead", f"Every host answered. Roll the restart through "
                            f"{len(fleet)} hosts? Reply True to go on."), name="go_ahead")
deploy = fleet.rolling(
    [("restart", 'echo "stopping app on {host}"; sleep 1; echo "app started"',
      {"timeout": 300}),
     ("verify", 'echo "app healthy on {host}"')],
    name="deploy", canary=1, batch="20%", max_fail=0,
)

trail = preflight >> go_ahead >> deploy

ANSWERS = {"go_ahead": True}
