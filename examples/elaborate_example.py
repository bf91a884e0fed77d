"""Every helper in one runbook: a rolling upgrade of a small web tier.

    python examples/elaborate_example.py [--canary]   # runs it, printing its status
    trail run examples/elaborate_example.py            # or with the live view
    trail dot examples/elaborate_example.py -o upgrade.svg

Uses: a threadsafe context shared by parallel steps, extraction_wrapper and the accepts_*
decorators, templated ShellCommands and Instructions, a conditional branch, tags for
steering (``trail pause --socket S tier=web``), a timeout and a failure handler.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser

from trail import StatusField, Step, TrailClient, TrailServer
from trail.helpers.context import threadsafe_class
from trail.helpers.io import InteractiveTrail
from trail.helpers.step import (
    Instruction,
    ShellCommand,
    accepts_context,
    accepts_environment,
    accepts_nothing,
    create_conditional_step,
    extraction_wrapper,
    make_context_attribute_based_templating_function,
    make_simple_templating_function,
)


@threadsafe_class
class Upgrade:
    """Shared by every step, in every process: method calls go to one instance."""

    def __init__(self, version: str, hosts: list[str], canary: bool) -> None:
        self.version = version
        self.hosts = hosts
        self.canary = canary
        self.upgraded: list[str] = []

    def mark(self, host: str) -> None:
        self.upgraded = [*self.upgraded, host]


@accepts_nothing
def preflight() -> str:
    return "preflight ok"


@accepts_environment
def say_hello(trail_env) -> str:
    trail_env.output("starting the rolling upgrade")
    return "hello"


def upgrade_host(host: str, version: str, say) -> str:
    say(f"{host}: installing {version}")
    return host


def upgrade(host: str) -> Step:
    action = extraction_wrapper(
        upgrade_host,
        parameter_extractors=[lambda env, ctx: {"host": host, "version": ctx.version,
                                                "say": env.output}],
        return_handlers=[lambda returned, ctx: ctx.mark(returned)],
        return_value_extractor=lambda returned, ctx: f"{returned} on {ctx.version}",
    )
    return Step(action, name=f"upgrade_{host}", tier="web", host=host, timeout=60)


@accepts_context
def report(context) -> str:
    return f"upgraded {sorted(context.upgraded)} to {context.version}"


def handle_failure(trail_env, context, error):
    trail_env.output(f"verification failed: {error}; look at the release notes")
    return f"failed: {error}"


check_disk = Step(ShellCommand(
    "check_disk", make_simple_templating_function("df -h {tmp}"),
    is_error_fatal=lambda line: "No such file" in line), name="check_disk")
canary = create_conditional_step(accepts_context(lambda ctx: ctx.canary), name="canary")
canary_note = Step(Instruction("watch_canary", make_context_attribute_based_templating_function(
    "canary", "Watch the {version} canary dashboards for 5 minutes, then reply True")),
    name="watch_canary")
verify = Step(ShellCommand("verify", "echo {version} is live", shell=True), name="verify",
              failure_handler=handle_failure)
hosts = ["web1", "web2", "web3"]
upgrades = [upgrade(host) for host in hosts]

trail = [
    *(Step(preflight) >> Step(say_hello) >> check_disk >> canary >> canary_note),
    *(check_disk >> upgrades >> verify >> Step(report)),
    (canary_note, verify),
]


context = Upgrade("2.4.1", hosts, canary=True)
context.tmp = "/tmp"



def is_step_done(client: TrailClient, name: str) -> bool:
    rows = client.status(fields=[StatusField.STATE], name=name)
    return bool(rows) and rows[0][StatusField.STATE] == Step.SUCCESS


if __name__ == "__main__":
    parser = ArgumentParser(description="A rolling upgrade, printing its status as it goes.")
    parser.add_argument("--canary", action="store_true",
                        help="watch a canary first (an instruction: reply at the prompt)")
    context = Upgrade("2.4.1", hosts, canary=parser.parse_args().canary)
    context.tmp = "/tmp"
    server = TrailServer(trail, delay=0.5, context=context)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file)
    shown = InteractiveTrail(client)
    shown.start()
    while not is_step_done(client, "report"):
        print("=" * 30, "status of the trail", "=" * 30)
        shown.status(fields=[StatusField.STATE, StatusField.RETURN_VALUE])
        time.sleep(1)
    shown.status(name="report", fields=[StatusField.RETURN_VALUE])
    client.shutdown(dry_run=False)
    print("[Example Trail] -- the trail server is shut down; the example ends.")
