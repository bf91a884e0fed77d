"""A runbook over a fleet, for the live view and the web page at scale: ``drain@webN`` then
``upgrade@webN`` on FLEET_HOSTS hosts (tagged host= and phase=, as on_hosts tags them;
thread steps that return at once), the upgrades held behind ``approve`` (a question);
``drain@web17`` fails and pauses, waiting for the operator."""

import os

from trail import Instruction, Step

HOSTS = int(os.environ.get("FLEET_HOSTS", "1500"))
executor = "thread"


def done(trail_env, context):
    return "ok"


def stuck(trail_env, context):
    raise RuntimeError("web17 would not drain: 3 connections left")


def fleet(hosts: int) -> list:
    approve = Step(Instruction("approve", "Upgrade the fleet now?"), name="approve")
    drains = [Step(stuck if i == 17 else done, name=f"drain@web{i}", host=f"web{i}",
                   phase="drain") for i in range(hosts)]
    upgrades = [Step(done, name=f"upgrade@web{i}", host=f"web{i}", phase="upgrade")
                for i in range(hosts)]
    return [(approve, upgrade) for upgrade in upgrades] + list(zip(drains, upgrades,
                                                                   strict=True))


trail = fleet(HOSTS)
