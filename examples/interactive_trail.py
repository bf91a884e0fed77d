"""An interactive trail: a context object, pre- and post-processors, steered from a REPL.

    python examples/interactive_trail.py        # serves the trail, opens a Python REPL
    trail run examples/interactive_trail.py     # or with the live view

In the REPL every call prints its result: status(), start(), pause(name="restart_web",
dry_run=False), next_step(dry_run=False), ... (see help(trail)).
"""

from __future__ import annotations

import code

from trail import Step, TrailClient, TrailServer, interactive


class Context:
    """What the steps share: the service and what each step found."""

    def __init__(self, service: str, hosts: list[str]) -> None:
        self.service = service
        self.hosts = hosts


def hosts_only(trail_env, context):
    """A pre-processor: call the action with the host list instead of (env, context)."""
    trail_env.output(f"{len(context.hosts)} hosts for {context.service}")
    return (context.hosts,), {}


def count_up(trail_env, context, value):
    """A post-processor: the step's return value is a summary, not the raw list."""
    return f"{len(value)} of {len(context.hosts)} hosts ok"


def check_hosts(hosts):
    return [host for host in hosts if not host.startswith("down")]


def drain(trail_env, context):
    for host in context.hosts:
        trail_env.output(f"draining {host}")
    return "drained"


def restart_web(trail_env, context):
    trail_env.output(f"restarting {context.service}")
    return "restarted"


def undrain(trail_env, context):
    return "back in service"


check = Step(check_hosts, pre_processor=hosts_only, post_processor=count_up)
trail = check >> Step(drain) >> Step(restart_web, tier="web") >> Step(undrain)
context = Context("nginx", ["web1", "web2", "web3"])


def main() -> None:
    server = TrailServer(trail, context=context)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file)
    shell = interactive(client)
    shell.status()
    code.interact(banner="trail REPL: try start(), status(), pause(name='undrain', "
                         "dry_run=False). Ctrl-D leaves (and shuts the trail down).",
                  local=globals())
    client.shutdown(dry_run=False)


if __name__ == "__main__":
    main()
