"""A first runbook: three steps, one question, steered from the same script.

    python examples/quickstart.py [--yes]

It serves the trail in the background, starts it, prints every state change from the
server's event stream, and answers the step's question (with --yes without asking).
"""

from __future__ import annotations

import sys
import time

from trail import Output, Prompt, StateChanged, Step, TrailClient, TrailServer


def check_replicas(trail_env, context):
    trail_env.output(f"checking {len(context['replicas'])} replicas")
    time.sleep(0.3)
    return {"healthy": context["replicas"]}


def confirm(trail_env, context):
    answer = trail_env.input(f"Promote {context['replicas'][0]} to primary? [y/n]")
    if str(answer).strip().lower() not in ("y", "yes", "true"):
        raise RuntimeError(f"the operator answered {answer!r}")
    return "confirmed"


def promote(trail_env, context):
    trail_env.output(f"promoting {context['replicas'][0]}")
    time.sleep(0.3)
    return f"{context['replicas'][0]} is primary"


trail = Step(check_replicas) >> Step(confirm) >> Step(promote)
context = {"replicas": ["db2", "db3"]}


def main() -> int:
    auto_yes = "--yes" in sys.argv or not sys.stdin.isatty()
    server = TrailServer(trail, context=context)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file)
    print(f"serving at {server.socket_file}")
    with client.subscribe() as events:
        client.start()
        for event in events:
            if isinstance(event, StateChanged):
                print(f"  {event.n} {event.name:16} {event.state}")
            elif isinstance(event, Output):
                print(f"  {event.n} {event.name:16} | {event.message}")
            elif isinstance(event, Prompt):
                answer = "y" if auto_yes else input(f"{event.message} ")
                client.send_message_to_steps(answer, dry_run=False, n=event.n)
            if client.info()["finished"]:
                break
    rows = client.status()
    client.shutdown(dry_run=False)
    server.join(10)
    ok = all(row["State"] == "Succeeded" for row in rows)
    print("all steps succeeded" if ok else "the trail did not finish cleanly")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
