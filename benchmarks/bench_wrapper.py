"""The stop wrapper's cost per command, in CPU, against a bare ``/bin/sh -c COMMAND``.

    python benchmarks/bench_wrapper.py [--commands 200] [--rounds 3] [--command true]

Every command trail runs on a host (and here under sudo) runs under the stop wrapper
(``trail/layer2/steps/wrapper.py``): the host pays for it on every command, on top of ssh's
own session. Here the wrapper runs as ssh would run it, without ssh: ``/bin/sh -c LOADER``
given the wrapper on its input, kept open until the exit marker comes (as trail does), in
both of its forms, "subshell" (on a host) and "session" (here, its watcher in a session of
its own). The floor, measured in the same rounds, interleaved: ``/bin/sh -c COMMAND``. The
figure is the CPU of the children (user + system, ``RUSAGE_CHILDREN``), per command; the
wall time would follow whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from trail.layer2.steps.ssh import Target  # noqa: E402
from trail.layer2.steps.wrapper import new_tag, preamble, wrapped_argv  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare(command: str) -> None:
    subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, check=True)


def wrapped(command: str, target: Target) -> None:
    tag = new_tag()
    process = subprocess.Popen(wrapped_argv(target, command, tag, 2.0),
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(preamble(None))
    process.stdin.flush()
    for line in process.stderr:  # the input stays open until the command has ended
        if line.startswith(f"{tag} exit ".encode()):
            if not line.rstrip().endswith(b" 0"):
                raise SystemExit(f"the wrapped command failed: {line!r}")
            break
    process.stdin.close()
    process.stderr.close()
    process.wait()


def per_command(run: Callable[[], None], count: int) -> float:
    before = children_cpu()
    for _ in range(count):
        run()
    return (children_cpu() - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--command", default="true")
    options = parser.parse_args()
    kinds: dict[str, Callable[[], None]] = {
        "bare /bin/sh -c": lambda: bare(options.command),
        "wrapped, as on a host": lambda: wrapped(options.command, Target(host="host")),
        "wrapped, here (sudo)": lambda: wrapped(options.command, Target()),
    }
    seen: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(options.rounds):
        for name, run in kinds.items():
            seen[name].append(per_command(run, options.commands))
    floor = statistics.median(seen["bare /bin/sh -c"])
    for name, figures in seen.items():
        cost = statistics.median(figures)
        rounds = " ".join(f"{figure * 1000:.2f}" for figure in figures)
        print(f"{name:24} {cost * 1000:6.2f} ms CPU a command  {cost / floor:5.2f}x the floor"
              f"   (rounds: {rounds})")


if __name__ == "__main__":
    main()
