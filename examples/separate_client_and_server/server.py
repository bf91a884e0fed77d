"""Serve a trail in one process; steer it from another (see client.py).

    python examples/separate_client_and_server/server.py /tmp/demo.sock
"""

from __future__ import annotations

import sys
import time

from trail import Step, TrailServer


def wait_a_little(trail_env, context):
    time.sleep(0.2)
    return "waited"


def ask_for_go(trail_env, context):
    return trail_env.input("go?")


trail = Step(wait_a_little) >> Step(ask_for_go) >> Step(wait_a_little, name="after")

if __name__ == "__main__":
    socket_file = sys.argv[1] if len(sys.argv) > 1 else None
    server = TrailServer(trail, socket_file=socket_file)
    print(server.socket_file, flush=True)
    server.serve()  # in the foreground, until a client calls shutdown
