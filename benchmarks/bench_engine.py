"""Engine overhead per step and API latency, as ratios to floors measured in the same run.

    python benchmarks/bench_engine.py [--steps 1000] [--fan 100] [--calls 300]

Floors: a bare thread start+join (for the thread executor), a bare fork+waitpid (for the
process executor), a bare ZeroMQ ipc round trip (for API calls). The engine figures are
wall time from ``start()`` to the last step's Succeeded event, divided by the step count:
everything the engine does per step, around a step that does nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable

import zmq

from trail import ShellCommand, StateChanged, Step, TrailClient, TrailServer


def noop(trail_env: object, context: object) -> None:
    return None


def per_op(operation: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - started) / count


def thread_floor() -> None:
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()


def fork_floor() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def zmq_floor(count: int) -> list[float]:
    path = f"/tmp/trail-bench-{os.getpid()}.sock"
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    server = context.socket(zmq.ROUTER)
    server.bind(f"ipc://{path}")
    client = context.socket(zmq.DEALER)
    client.connect(f"ipc://{path}")

    def echo() -> None:
        while True:
            frames = server.recv_multipart()
            if frames[-1] == b"stop":
                return
            server.send_multipart(frames)

    echoer = threading.Thread(target=echo)
    echoer.start()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        client.send_multipart([b"", b'{"call": "status"}'])
        client.recv_multipart()
        times.append(time.perf_counter() - started)
    client.send_multipart([b"", b"stop"])
    echoer.join()
    client.close(0)
    server.close(0)
    os.unlink(path)
    return times


def chain(count: int) -> list[tuple[Step, Step]] | Step:
    steps = [Step(noop, name=f"s{i}") for i in range(count)]
    return list(zip(steps, steps[1:], strict=False)) or steps[0]


def fan(width: int) -> list[tuple[Step, Step]]:
    head, tail = Step(noop, name="head"), Step(noop, name="tail")
    middle = [Step(noop, name=f"m{i}") for i in range(width)]
    return [(head, m) for m in middle] + [(m, tail) for m in middle]


def run_time(definition: object, executor: str, last: str, journal: str | bool = False) -> float:
    """Seconds from start() to the Succeeded event of the step named ``last``."""
    server = TrailServer(definition, executor=executor, journal=journal, resume=False)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=60)
    try:
        with client.subscribe() as stream:
            started = time.perf_counter()
            client.start()
            while True:
                event = stream.next(timeout=120)
                if event is None:
                    raise RuntimeError("the trail stopped reporting")
                if isinstance(event, StateChanged) and event.name == last:
                    if event.state == "Succeeded":
                        return time.perf_counter() - started
                    if event.state not in ("Waiting", "Running"):
                        raise RuntimeError(f"{last} ended {event.state}")
    finally:
        client.shutdown(dry_run=False)
        server.join(30)


def latency(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def pct(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100)[int(q) - 1] if len(times) > 1 else times[0]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def load(steps: int, clients: int) -> None:
    """Clients sending status/pause/resume as fast as they can while a trail of ``steps``
    process-executor steps runs: latency, errors, and whether every step ran once."""
    log = os.path.join(tempfile.mkdtemp(prefix="trail-load-"), "ran.log")

    def counted(name: str):
        def action(trail_env: object, context: object) -> str:
            with open(log, "a") as out:
                out.write(name + "\n")
            return name

        return action

    chained = [Step(counted(f"s{i}"), name=f"s{i}") for i in range(steps)]
    server = TrailServer(list(zip(chained, chained[1:], strict=False)), journal=False)
    server.serve(threaded=True)
    stop = threading.Event()
    times: list[float] = []
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        import random

        rng = random.Random(seed)
        client = TrailClient(server.socket_file, timeout=60)
        while not stop.is_set():
            name = f"s{rng.randrange(steps)}"
            for call in (lambda name=name: client.status(name=name),
                         lambda name=name: client.pause(dry_run=False, name=name),
                         lambda name=name: client.resume(dry_run=False, name=name)):
                started = time.perf_counter()
                try:
                    call()
                except Exception as exc:
                    errors.append(exc)
                times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    client = TrailClient(server.socket_file, timeout=60)
    started = time.perf_counter()
    client.start()
    while client.info()["counts"].get("Succeeded", 0) < steps:
        client.resume(dry_run=False)  # what a hammer left paused
        time.sleep(0.05)
    took = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join()
    client.shutdown(dry_run=False)
    server.join(30)
    with open(log) as ran:
        counts = Counter(ran.read().split())
    once = sum(1 for c in counts.values() if c == 1)
    print(f"load: {clients} clients on a {steps}-step process trail: {len(times)} calls, "
          f"{len(errors)} errors, p50 {ms(pct(times, 50))}, p99 {ms(pct(times, 99))}; "
          f"{once} of {steps} steps ran exactly once, {len(counts)} ran; {took:.1f} s")


class _QuietEnvironment:
    """Enough of a step's environment to call a ShellCommand directly."""

    interrupted = False

    def output(self, message: object) -> None:
        pass

    def adopt_process_group(self, pgid: int, after: float | None = None) -> None:
        pass

    def on_interrupt(self, hook: Callable[[], None]) -> Callable[[], None]:
        return lambda: None


def shell_command_cost(count: int) -> None:
    """ShellCommand's own cost (the stop wrapper, line reading) against running the same
    program with subprocess.run."""
    floor = statistics.median(
        [per_op(lambda: subprocess.run(["true"], check=True), 1) for _ in range(count)])
    command = ShellCommand("true", ["true"])
    each = statistics.median(
        [per_op(lambda: command(_QuietEnvironment(), None), 1) for _ in range(count)])
    print(f"ShellCommand('true') {ms(each)}   subprocess.run(['true']) {ms(floor)}   "
          f"ratio {each / floor:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--fan", type=int, default=100)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--clients", type=int, default=20)
    options = parser.parse_args()

    floors = {"thread": per_op(thread_floor, 2000), "process": per_op(fork_floor, 300)}
    print(f"floor  thread start+join   {ms(floors['thread'])}")
    print(f"floor  fork+waitpid        {ms(floors['process'])}")
    print()
    print(f"{'trail':22} {'executor':8} {'per step':>11} {'floor':>11} {'overhead':>11} "
          f"{'ratio':>6}")
    journal = os.path.join(tempfile.mkdtemp(prefix="trail-bench-"), "journal.sqlite3")
    without: dict[str, float] = {}
    for executor in ("thread", "process"):
        for label, definition, steps, last in (
            (f"chain of {options.steps}", chain(options.steps), options.steps,
             f"s{options.steps - 1}"),
            (f"fan 1->{options.fan}->1", fan(options.fan), options.fan + 2, "tail"),
        ):
            each = run_time(definition, executor, last) / steps
            floor = floors[executor]
            without[f"{label} {executor}"] = each
            print(f"{label:22} {executor:8} {ms(each)} {ms(floor)} {ms(each - floor)} "
                  f"{each / floor:6.2f}")
    print()
    print("the journal's cost (SQLite, WAL), same trails:")
    print(f"{'trail':22} {'executor':8} {'journal':>11} {'none':>11} {'ratio':>6}")
    for executor in ("thread", "process"):
        label = f"chain of {options.steps}"
        each = run_time(chain(options.steps), executor, f"s{options.steps - 1}",
                        journal) / options.steps
        base = without[f"{label} {executor}"]
        print(f"{label:22} {executor:8} {ms(each)} {ms(base)} {each / base:6.2f}")

    print()
    ipc = zmq_floor(options.calls)
    server = TrailServer(chain(options.steps), executor="thread", journal=journal,
                         resume=False)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file)
    last = f"s{options.steps - 1}"
    try:
        timed = {
            "zmq ipc round trip (floor)": ipc,
            f"status() of {options.steps} steps": latency(client.status, options.calls),
            "pause() one step": latency(lambda: client.pause(dry_run=False, name=last),
                                        options.calls),
            f"pause() dry run, {options.steps} steps": latency(client.pause, options.calls),
        }
    finally:
        client.shutdown(dry_run=False)
        server.join(30)
    print(f"{'round trip':34} {'p50':>11} {'p99':>11} {'p50/floor':>9}")
    floor_p50 = pct(ipc, 50)
    for label, times in timed.items():
        p50, p99 = pct(times, 50), pct(times, 99)
        print(f"{label:34} {ms(p50)} {ms(p99)} {p50 / floor_p50:9.1f}")
    print()
    shell_command_cost(100)
    print()
    load(options.steps, options.clients)


if __name__ == "__main__":
    main()
