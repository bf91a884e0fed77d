"""A trail steered from a Python prompt, written as an AutoTrail script is.

    python examples/interactive_trail.py        # serves the trail, opens a REPL
    trail run examples/interactive_trail.py     # or with the live view

At the ``Example Trail>`` prompt, ``example`` is an InteractiveTrail: ``example.start()``,
``example.status()``, ``example.pause(foo='bar', dry_run=False)``, ... print their results
(the bare calls, ``status()``, ``start()``, work too). Ctrl-D leaves; the script then stops
the trail and shuts its server down.

Every step gets the context's seed through a pre-processor, and a post-processor keeps what
each step made in the context, so later steps' return values show the earlier ones.
"""

from __future__ import annotations

import time

from trail import InteractiveTrail, Step, TrailClient, TrailServer, interactive


class Tally:
    """The context: a number every step starts from, and what the steps made of it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.made: list[int] = []


def give_seed(trail_env, context):
    return (context.seed,), {}


def keep_result(trail_env, context, value):
    before = list(context.made)
    context.made.append(value)
    return f"made {value}; made before it: {before}"


def adder(amount: int, pause: float):
    """An action that waits a moment and adds ``amount`` to its seed."""

    def add(seed):
        time.sleep(pause)
        return seed + amount

    add.__name__ = f"add_{amount}"
    return add


def step(amount: int, pause: float, **tags) -> Step:
    return Step(adder(amount, pause), pre_processor=give_seed, post_processor=keep_result,
                **tags)


first = step(1, 0.5)
left, right = step(2, 1.0), step(5, 0.5)
left_two, right_two = step(3, 0.2, foo="bar"), step(6, 0.2, foo="bar")
left_three = step(4, 1.0)
last = step(7, 0.5)

# Two branches from the first step that meet again at the last.
trail = [
    (first, left),
    (first, right),
    (left, left_two),
    (left_two, left_three),
    (left_three, last),
    (right, right_two),
    (right_two, last),
]
context = Tally(10)


if __name__ == "__main__":
    server = TrailServer(trail, delay=0.5, context=context)
    server.serve(threaded=True)
    example = InteractiveTrail(TrailClient(server.socket_file))

    interactive(globals(), prompt="Example Trail>")
    example.stop(dry_run=False)
    example.shutdown(dry_run=False)
