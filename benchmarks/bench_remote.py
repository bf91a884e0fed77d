"""Remote steps: what trail adds to a command run over ssh, as ratios to bare ssh.

    python benchmarks/bench_remote.py [--steps 20] [--fan 20]

Starts the tests' private sshd on loopback (tests/remote/sshd.py), so the figures are
ssh's own cost (key exchange, a session, a remote shell) plus trail's, with no network.
Floors: ``ssh host true`` run one after another, and the same started all at once.
trail: a chain of RemoteCommand("true") steps, and a fan of them, from start() to the last
step's Succeeded event. Also: how long after interrupt() the remote command is gone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.bench_engine import ms, run_time  # noqa: E402
from tests.remote.sshd import ALIASES, Sshd  # noqa: E402
from trail import RemoteCommand, Step, TrailClient, TrailServer  # noqa: E402


def bare(sshd: Sshd, host: str) -> list[str]:
    return ["ssh", *sshd.options, "-T", "-o", "BatchMode=yes", host, "true"]


def sequential_floor(sshd: Sshd, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        subprocess.run(bare(sshd, ALIASES[i % len(ALIASES)]), check=True)
    return (time.perf_counter() - started) / count


def parallel_floor(sshd: Sshd, count: int) -> float:
    started = time.perf_counter()
    running = [subprocess.Popen(bare(sshd, ALIASES[i % len(ALIASES)])) for i in range(count)]
    for process in running:
        assert process.wait() == 0
    return time.perf_counter() - started


def remote(sshd: Sshd, i: int, extra: list[str] | None = None) -> Step:
    host = ALIASES[i % len(ALIASES)]
    return Step(RemoteCommand(f"r{i}", "true", host=host,
                              ssh_options=[*sshd.options, *(extra or [])]), name=f"r{i}")


def stop_latency(sshd: Sshd, rounds: int) -> list[float]:
    """Seconds from interrupt() returning to no process of the command left on the host."""
    times = []
    for _ in range(rounds):
        marker = f"trail-bench-{uuid.uuid4().hex}"
        command = f"sh -c 'sleep 600; :' {marker}"
        step = Step(RemoteCommand("long", command, host="db1", ssh_options=sshd.options),
                    name="long")
        server = TrailServer(step, journal=False)
        server.serve(threaded=True)
        client = TrailClient(server.socket_file, timeout=30)
        pattern = f"sleep 600; : {marker}"
        try:
            client.start()
            while not subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout:
                time.sleep(0.005)
            client.interrupt(dry_run=False)
            started = time.perf_counter()
            while subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout:
                time.sleep(0.002)
            times.append(time.perf_counter() - started)
        finally:
            client.shutdown(dry_run=False)
            server.join(30)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--fan", type=int, default=20)
    parser.add_argument("--stops", type=int, default=5)
    options = parser.parse_args()
    sshd = Sshd(Path(tempfile.mkdtemp(prefix="trail-bench-sshd-")))
    try:
        floor = sequential_floor(sshd, options.steps)
        print(f"floor  ssh host true, one after another   {ms(floor)} each")
        wide = parallel_floor(sshd, options.fan)
        print(f"floor  {options.fan} x ssh host true at once         {ms(wide)} in all")
        print()
        steps = [remote(sshd, i) for i in range(options.steps)]
        chain = list(zip(steps, steps[1:], strict=False))
        for executor in ("process", "thread"):
            each = run_time(chain, executor, f"r{options.steps - 1}") / options.steps
            print(f"chain of {options.steps} RemoteCommands, {executor:7}  {ms(each)} each, "
                  f"{each / floor:5.2f}x bare ssh")
        shared = tempfile.mkdtemp(prefix="cm-", dir="/tmp")
        mux = ["-o", "ControlMaster=auto", "-o", f"ControlPath={shared}/%C",
               "-o", "ControlPersist=60"]
        steps = [remote(sshd, i, mux) for i in range(options.steps)]
        chain = list(zip(steps, steps[1:], strict=False))
        each = run_time(chain, "process", f"r{options.steps - 1}") / options.steps
        print(f"the same, sharing connections (ControlMaster)  {ms(each)} each, "
              f"{each / floor:5.2f}x bare ssh")
        for host in ALIASES:
            subprocess.run(["ssh", *sshd.options, *mux, "-O", "exit", host],
                           capture_output=True)
        fan = [remote(sshd, i) for i in range(options.fan)]
        head = Step(lambda env, ctx: None, name="head")
        tail = Step(lambda env, ctx: None, name="tail")
        total = run_time([(head, s) for s in fan] + [(s, tail) for s in fan], "process",
                         "tail")
        print(f"fan of {options.fan} RemoteCommands, process  {ms(total)} in all, "
              f"{total / wide:5.2f}x bare ssh at once")
        print()
        stops = stop_latency(sshd, options.stops)
        print(f"interrupt() to no process left on the host: median {ms(statistics.median(stops))}"
              f", max {ms(max(stops))} ({options.stops} runs)")
    finally:
        sshd.stop()


if __name__ == "__main__":
    main()
