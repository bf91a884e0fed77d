"""The engine at fleet scale: a fan of 10,000 and 100,000 independent steps, as ratios to
floors measured in the same run.

    python benchmarks/bench_scale.py [--sizes 10000 100000] [--rounds 1]

Each trail is a fan, one root >> N children that do nothing, served by a TrailServer
(thread executor, AutoTrail's DAG file as by default) in a child process of its own, so
its memory is the server's alone. Per size and round, two servers: one without a
journal, one with (SQLite, WAL); the figures are medians over the rounds.

- build + serve: from the first Step made to the first reply of the served trail, in
  the server's process. Floors: a networkx graph of the same edges between plain
  objects, and an SQLite insert of N rows (what any engine of this design pays).
- memory: the server process's resident set (VmRSS from /proc/<pid>/status) after
  serving, after the run, and after one status() of every step (which caches each row),
  less the RSS of the same process before it built anything (trail imported); per step.
- run: from start() to the run's Finished event, every event read by a subscriber in
  this process, per step. Floor: a bare thread start+join.
- journal: the run with the journal over the run without.
- status(name=...) of one step and status() of every step, from a client in this process
  (the whole reply decoded); the paged form: status(offset=, limit=1000) per page and
  summed over every page. Floor: a bare ZeroMQ ipc round trip.
- a pause seen on the event stream: from sending pause(name=..., dry_run=False) for a
  Ready step to its StateChanged event arriving, the trail not started.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import networkx as nx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.bench_engine import per_op, thread_floor, zmq_floor  # noqa: E402
from trail import Finished, StateChanged, Step, TrailClient, TrailServer  # noqa: E402
from trail.errors import TrailClientError  # noqa: E402

PAGE = 1000


def noop(trail_env: object, context: object) -> None:
    return None


def rss_kib(pid: int) -> int:
    """A process's resident set, in KiB (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


# --- the server's side (a child process) ------------------------------------------------

def serve(steps: int, journal: str) -> None:
    """Build and serve a fan of ``steps``; print what it measured as one JSON line, then
    serve until shut down."""
    base = rss_kib(os.getpid())
    started = time.perf_counter()
    root = Step(noop, name="root")
    definition = [(root, Step(noop, name=f"m{i}")) for i in range(steps)]
    made = time.perf_counter()
    server = TrailServer(definition, executor="thread", journal=journal or False,
                         resume=False, name=f"scale-{steps}")
    del root, definition  # the script's own; the server keeps what it needs
    opened = time.perf_counter()
    server.serve(threaded=True)
    TrailClient(server.socket_file, timeout=120).status(name="root")
    served = time.perf_counter()
    print(json.dumps({"socket": server.socket_file, "base_kib": base,
                      "steps_s": made - started, "server_s": opened - made,
                      "serve_s": served - opened, "build_s": served - started}), flush=True)
    server.join()


# --- the client's side --------------------------------------------------------------------

def median_time(operation: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        operation()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def pause_seen(client: TrailClient, name: str, count: int) -> float:
    """Median seconds from sending a pause of a Ready step to its event arriving."""
    times = []
    with client.subscribe() as stream:
        for _ in range(count):
            began = time.perf_counter()
            client.pause(dry_run=False, name=name)
            while True:
                event = stream.next(timeout=30)
                if event is None:
                    raise RuntimeError("no event for the pause")
                if isinstance(event, StateChanged) and event.name == name:
                    break
            times.append(time.perf_counter() - began)
            client.resume(dry_run=False, name=name)
    return statistics.median(times)


def run_to_end(client: TrailClient) -> tuple[float, int]:
    """Seconds from start() to the run's Finished event, with a subscriber reading every
    event; and how many events the subscriber missed (the server drops events for a
    subscriber that falls behind rather than wait: then a lost Finished is noticed by
    asking the server, within 0.1 s)."""
    with client.subscribe() as stream:
        began = time.perf_counter()
        client.start()
        while True:
            event = stream.next(timeout=0.1)
            if isinstance(event, Finished):
                break
            if event is None and client.info()["finished"]:
                break
        return time.perf_counter() - began, stream.missed


def one_server(steps: int, journal: str, full: bool) -> dict[str, float]:
    """Serve a fan of ``steps`` in a child process and measure it (``full``: every figure,
    else build and run only)."""
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(steps), "--journal",
                              journal], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the server process ended before serving")
        figures: dict[str, float] = json.loads(line)
        socket = str(figures.pop("socket"))
        base = figures["base_kib"]
        client = TrailClient(socket, timeout=120)
        figures["served_kib"] = rss_kib(child.pid) - base
        if full:
            figures["status_one_s"] = median_time(lambda: client.status(name="m7"), 300)
            figures["pause_seen_s"] = pause_seen(client, f"m{steps // 2}", 50)
        figures["run_s"], figures["missed"] = run_to_end(client)
        figures["ran_kib"] = rss_kib(child.pid) - base
        if full:
            figures["status_all_s"] = median_time(client.status, 5)
            figures["status_all_kib"] = rss_kib(child.pid) - base
            try:
                figures["status_page_s"] = median_time(
                    lambda: client.status(offset=steps // 2, limit=PAGE), 50)
            except TrailClientError:  # a server from before status had pages
                figures["status_page_s"] = figures["status_pages_s"] = math.nan
            else:
                began = time.perf_counter()
                offset = 0
                while client.status(offset=offset, limit=PAGE):
                    offset += PAGE
                figures["status_pages_s"] = time.perf_counter() - began
            figures["status_one_after_s"] = median_time(lambda: client.status(name="m7"), 300)
        client.shutdown(dry_run=False)
        child.wait(120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return figures


def floors(steps: int) -> dict[str, float]:
    class Node:
        pass

    nodes = [Node() for _ in range(steps + 1)]
    began = time.perf_counter()
    graph = nx.DiGraph()
    graph.add_edges_from((nodes[0], node) for node in nodes[1:])
    graph_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as directory:
        db = sqlite3.connect(os.path.join(directory, "floor.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE steps (run INTEGER, n INTEGER, name TEXT, state TEXT, "
                   "PRIMARY KEY (run, n)) WITHOUT ROWID")
        began = time.perf_counter()
        db.execute("BEGIN")
        db.executemany("INSERT INTO steps VALUES (1, ?, ?, 'Ready')",
                       ((n, f"m{n}") for n in range(steps + 1)))
        db.execute("COMMIT")
        sqlite_s = time.perf_counter() - began
        db.close()
    return {"graph_s": graph_s, "sqlite_s": sqlite_s}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:10.3f} ms"


def mib(kib: float) -> str:
    return f"{kib / 1024:8.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--journal", default="", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.serve, options.journal)
        return

    thread = per_op(thread_floor, 2000)
    ipc = statistics.median(zmq_floor(300))
    print(f"floor  thread start+join {ms(thread)}   zmq ipc round trip {ms(ipc)}")
    directory = tempfile.mkdtemp(prefix="trail-scale-")
    results: dict[int, list[dict[str, float]]] = {size: [] for size in options.sizes}
    for round_ in range(options.rounds):
        for size in options.sizes:  # interleaved: every size once per round
            figures = {**floors(size), **one_server(size, "", full=True)}
            journaled = one_server(size, os.path.join(directory, f"j{round_}-{size}.sqlite3"),
                                   full=False)
            figures.update({f"journal_{key}": value for key, value in journaled.items()})
            results[size].append(figures)
    for size in options.sizes:
        figure = {key: statistics.median(r[key] for r in results[size])
                  for key in results[size][0]}
        show(size, figure, thread, ipc, options.rounds)


def show(size: int, f: dict[str, float], thread: float, ipc: float, rounds: int) -> None:
    steps = size + 1
    print()
    print(f"fan 1 -> {size:,} ({steps:,} steps), thread executor; medians of {rounds} "
          f"round(s)")
    print(f"  build + serve        {ms(f['build_s'])}  (Steps {ms(f['steps_s'])}, "
          f"TrailServer() {ms(f['server_s'])}, serve to first reply {ms(f['serve_s'])})")
    print(f"    with the journal   {ms(f['journal_build_s'])}")
    print(f"    floors: networkx graph {ms(f['graph_s'])} (x{f['build_s'] / f['graph_s']:.1f}),"
          f" sqlite insert of {steps:,} rows {ms(f['sqlite_s'])}")
    base = f["base_kib"]
    print(f"  server memory, RSS: the bare process (trail imported) {mib(base)}; served "
          f"{mib(base + f['served_kib'])} ({(base + f['served_kib']) * 1024 / steps:,.0f} "
          f"B/step), after the run {mib(base + f['ran_kib'])}, after a full status "
          f"{mib(base + f['status_all_kib'])}")
    print(f"    over the bare process: served {f['served_kib'] * 1024 / steps:,.0f} B/step, "
          f"after the run {f['ran_kib'] * 1024 / steps:,.0f} B/step; with the journal, "
          f"after the run {mib(base + f['journal_ran_kib'])}")
    run = f["run_s"] / steps
    print(f"  run, per step, with a subscriber {ms(run)}  floor (thread start+join) "
          f"{ms(thread)}  x{run / thread:.2f}  ({f['missed']:,.0f} of {3 * steps:,} events "
          f"dropped for the subscriber)")
    journal = f["journal_run_s"] / steps
    print(f"  run with the journal, per step   {ms(journal)}  x{journal / run:.2f} the run "
          f"without")
    print(f"  status(name=...) of one step     {ms(f['status_one_s'])}  (after the run "
          f"{ms(f['status_one_after_s'])})  x{f['status_one_s'] / ipc:.1f} the zmq floor")
    print(f"  status() of every step           {ms(f['status_all_s'])}  (one reply of "
          f"{steps:,} rows)")
    print(f"  status(offset=, limit={PAGE})     {ms(f['status_page_s'])} a page, "
          f"{ms(f['status_pages_s'])} every page")
    print(f"  a pause seen on the event stream {ms(f['pause_seen_s'])}  "
          f"x{f['pause_seen_s'] / ipc:.1f} the zmq floor")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
