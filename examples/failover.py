"""A database fail-over: promote a replica when the primary is lost.

    trail run examples/failover.py            # with the live view
    trail run examples/failover.py --no-tty   # plain log lines

The "cluster" is a directory of small files (one per database host: role, replication
lag), made fresh in a temporary directory, so the runbook's commands are real commands
that change real state, and it runs anywhere. Swap the ShellCommands for your own
(pg_ctl promote, patronictl, a DNS API call) and the runbook stays the same.

What it shows: ShellCommand steps streaming their output, a prompt (which replica to
promote), an Instruction the operator marks done, a conditional branch (announce only
outside the maintenance window), a shared context the steps write to, tags to steer by.
With the journal on (the default) the context survives a crash: after a kill -9, `trail
run` takes the run up with the same cluster directory and the chosen replica; a step that
finds no replica chosen fails loudly rather than promote nobody.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trail import (
    Instruction,
    ShellCommand,
    Step,
    create_conditional_step,
    threadsafe_class,
)


@threadsafe_class
class Failover:
    """What the steps share. A threadsafe_class: steps run in their own processes, and
    what one of them records (the chosen replica) must reach the others."""

    def __init__(self, cluster: str, old_primary: str, replicas: list[str],
                 in_maintenance_window: bool) -> None:
        self.cluster = cluster
        self.old_primary = old_primary
        self.replicas = replicas
        self.in_maintenance_window = in_maintenance_window
        self.new_primary = ""

    def choose(self, host: str) -> None:
        if host not in self.replicas:
            raise ValueError(f"{host!r} is not a replica; choose one of {self.replicas}")
        self.new_primary = host


def make_cluster() -> str:
    """A throw-away cluster: db1 is the (lost) primary, db2 and db3 replicas."""
    cluster = Path(tempfile.mkdtemp(prefix="trail-failover-"))
    for host, role, lag in (("db1", "primary", 0), ("db2", "replica", 0), ("db3", "replica", 4)):
        (cluster / f"{host}.role").write_text(role + "\n")
        (cluster / f"{host}.lag").write_text(f"{lag}\n")
    (cluster / "dns").write_text("db.example.internal -> db1\n")
    return str(cluster)


def replica_lag(trail_env, context) -> list[str]:
    """One command per replica: print its replication lag."""
    checks = "; ".join(f'echo "{host}: lag $(cat {context.cluster}/{host}.lag) s"'
                       for host in context.replicas)
    return ["/bin/sh", "-c", checks]


def choose_replica(trail_env, context) -> str:
    answer = trail_env.input(f"Promote which replica? {' / '.join(context.replicas)}")
    host = str(answer).strip()
    context.choose(host)
    trail_env.output(f"{host} will be the new primary")
    return host


def announce_needed(trail_env, context) -> bool:
    """The guard of the announcement branch: False skips it."""
    return not context.in_maintenance_window


def chosen(context) -> str:
    """The replica choose_replica recorded; never an empty name to act on."""
    if context.new_primary not in context.replicas:
        raise RuntimeError(f"no replica has been chosen (new_primary is "
                           f"{context.new_primary!r}); rerun choose_replica")
    return context.new_primary


def promote_command(trail_env, context) -> list[str]:
    c, new, old = context.cluster, chosen(context), context.old_primary
    script = (f"echo primary > {c}/{new}.role && echo retired > {c}/{old}.role && "
              f"echo 'promoted {new}; {old} retired'")
    return ["/bin/sh", "-c", script]


def dns_command(trail_env, context) -> list[str]:
    c, new = context.cluster, chosen(context)
    return ["/bin/sh", "-c", f"echo 'db.example.internal -> {new}' > {c}/dns && cat {c}/dns"]


def verify(trail_env, context) -> str:
    cluster = Path(context.cluster)
    new = chosen(context)
    role = (cluster / f"{new}.role").read_text().strip()
    dns = (cluster / "dns").read_text().strip()
    if role != "primary" or not dns.endswith(new):
        raise RuntimeError(f"{new} is {role!r} and DNS says {dns!r}")
    trail_env.output(f"{new} is primary and DNS points at it")
    return f"fail-over to {new} complete"


check_lag = Step(ShellCommand("check_lag", replica_lag), name="check_lag", phase="check")
choose = Step(choose_replica, name="choose_replica", phase="check")
fence = Step(Instruction(
    "fence_old_primary",
    "Make sure {old_primary} cannot take writes (power it off or block port 5432), "
    "then reply True"), name="fence_old_primary", phase="switch")
announce = create_conditional_step(announce_needed, name="announce_needed", phase="notify")
notice = Step(ShellCommand("post_notice", "echo 'fail-over of {old_primary} under way' ",
                           shell=True), name="post_notice", phase="notify")
promote = Step(ShellCommand("promote", promote_command), name="promote", phase="switch",
               timeout=120)
repoint = Step(ShellCommand("repoint_dns", dns_command), name="repoint_dns", phase="switch")
check = Step(verify, name="verify", phase="verify")

trail = [
    *(check_lag >> choose >> [fence, announce]),
    *(announce >> notice >> promote),
    *(fence >> promote >> repoint >> check),
]

context = Failover(make_cluster(), "db1", ["db2", "db3"],
                   in_maintenance_window=os.environ.get("MAINTENANCE_WINDOW") == "1")

# What `trail run` answers for you with --answer, and what the tests answer.
ANSWERS = {"choose_replica": "db2", "fence_old_primary": True}
