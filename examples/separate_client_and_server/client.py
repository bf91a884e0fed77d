"""Steer the trail served by server.py: start it, answer its question, shut it down.

    python examples/separate_client_and_server/client.py /tmp/demo.sock
"""

from __future__ import annotations

import sys

from trail import Prompt, StateChanged, TrailClient


def main(socket_file: str) -> int:
    client = TrailClient(socket_file)
    with client.subscribe() as events:
        print("started:", [step["name"] for step in client.start()])
        for event in events:
            if isinstance(event, Prompt):
                print(f"{event.name} asks {event.message!r}; answering yes")
                client.send_message_to_steps("yes", dry_run=False, n=event.n)
            if isinstance(event, StateChanged):
                print(f"{event.name}: {event.state}")
            if client.info()["finished"]:
                break
    rows = client.status(fields=["State", "Return value"])
    for row in rows:
        print(f"{row['n']} {row['Name']}: {row['State']} -> {row['Return value']!r}")
    client.shutdown(dry_run=False)
    return 0 if all(row["State"] == "Succeeded" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
