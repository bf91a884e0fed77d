"""The dask executor's cost per step, and many CPU-bound steps on a cluster vs one machine.

    python benchmarks/bench_dask.py [--chain 100] [--rounds 5] [--steps 1000] [--cpu-ms 50]
                                    [--workers 4] [--scheduler tcp://host:8786]

Per-step overhead: a chain of steps that do nothing, run on a LocalCluster (processes), wall
time per step, against a bare ``client.submit(f).result()`` floor measured in the same run
(half the chain's length just before the chain and half just after, so a busy machine
weighs on both alike); ``--rounds`` rounds, the medians and the median ratio reported.
Throughput: ``--steps`` independent steps each burning ``--cpu-ms`` of CPU, on ``--workers``
single-threaded workers, and under the process executor on this machine (``max_parallel``
= the machine's CPUs), alternating for ``--fan-rounds``; then the same burns as bare Dask
tasks (``client.submit``) on the same cluster: what Dask itself costs. Wall times, and the
CPU each run cost beyond the steps' own (this process and its descendants: the trail, the
scheduler, the workers, their agents, the steps): on a machine other work shares, the wall
times follow its load, the CPU does not. On one machine the cluster shares its cores:
there the figures say what each executor costs per step; with workers on other hosts
(``--scheduler``, whose workers this process cannot count) what the cluster buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from trail import Step, TrailClient, TrailServer  # noqa: E402


def noop(trail_env: object, context: object) -> int:
    return 1


def bare() -> int:
    return 1


def burn(ms: float) -> None:
    # The thread's CPU: run as a bare Dask task, the worker's other threads (its event loop)
    # are Dask's cost, not the task's (in a step's own process the two are the same).
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass


def busy(trail_env: object, context: float) -> None:
    burn(context)


def wall(definition: object, context: object = None, every: float = 0.005,
         **options: object) -> float:
    """Seconds from start() to the run's end, looking every ``every`` seconds (each look
    costs the server CPU: long runs look less often)."""
    server = TrailServer(definition, context=context, journal=False, **options)  # type: ignore[arg-type]
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=30)
    started = time.monotonic()
    client.start()
    while not client.info()["finished"]:
        time.sleep(every)
    elapsed = time.monotonic() - started
    client.shutdown(dry_run=False)
    server.join(30)
    return elapsed


def chain(count: int) -> list[tuple[Step, Step]]:
    steps = [Step(noop, name=f"s{i}") for i in range(count)]
    return list(zip(steps, steps[1:], strict=False))


def floor(client: object, count: int) -> float:
    started = time.monotonic()
    for _ in range(count):
        client.submit(bare, pure=False).result()  # type: ignore[attr-defined]
    return (time.monotonic() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000, help="0 to skip the throughput")
    parser.add_argument("--cpu-ms", type=float, default=50.0)
    parser.add_argument("--fan-rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scheduler", help="an existing cluster (default: a LocalCluster)")
    parser.add_argument("--quiet-cluster", action="store_true",
                        help="the LocalCluster's event loops check their health every 1 s "
                             "(not 20 ms) and its workers do not profile their tasks: idle, "
                             "its processes then take half the CPU or less")
    parser.add_argument("--process-executor", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.process_executor:
        process_executor(options.steps, options.cpu_ms)
        return

    from distributed import Client, LocalCluster

    os.environ["PYTHONPATH"] = str(Path(__file__).parents[1])  # workers import this trail
    cluster = None
    if options.scheduler:
        client = Client(options.scheduler)
    else:
        if options.quiet_cluster:
            import dask

            dask.config.set({"distributed.admin.tick.interval": "1s",
                             "distributed.worker.profile.enabled": False})
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    try:
        floor(client, 10)
        wall(chain(2 * options.workers), executor="dask", dask=client)  # warm the workers
        floors, pers, ratios = [], [], []
        for _ in range(options.rounds):
            before = floor(client, options.chain // 2)
            per = wall(chain(options.chain), executor="dask", dask=client) / options.chain
            bare_per = (before + floor(client, options.chain // 2)) / 2
            floors.append(bare_per)
            pers.append(per)
            ratios.append(per / bare_per)
            print(f"  round: dask executor {per * 1000:.1f} ms/step, bare submit "
                  f"{bare_per * 1000:.1f} ms, {per / bare_per:.2f}x", flush=True)
        if pers:
            print(f"per step (median of {options.rounds} rounds of {options.chain}): dask "
                  f"executor {statistics.median(pers) * 1000:.1f} ms, bare submit().result() "
                  f"{statistics.median(floors) * 1000:.1f} ms, median ratio "
                  f"{statistics.median(ratios):.2f}x")

        fans = []
        for _ in range(options.fan_rounds if options.steps else 0):
            fan = [Step(busy, name=f"b{i}") for i in range(options.steps)]
            cpu = tree_cpu()
            on_dask = wall(fan, options.cpu_ms, 0.1, executor="dask", dask=client)
            dask_cpu = tree_cpu() - cpu
            # In a process of its own, as a trail server using it runs: not one that holds
            # a Dask client and scheduler (forking a bigger process costs each step more).
            local, local_cpu = map(float, subprocess.run(
                [sys.executable, __file__, "--process-executor", "--steps",
                 str(options.steps), "--cpu-ms", str(options.cpu_ms)], check=True,
                capture_output=True, text=True).stdout.split())
            # Dask's own floor: the same burns as bare tasks on the same cluster.
            cpu = tree_cpu()
            started = time.monotonic()
            client.gather([client.submit(burn, options.cpu_ms, pure=False)  # type: ignore[attr-defined]
                           for _ in range(options.steps)])
            bare, bare_cpu = time.monotonic() - started, tree_cpu() - cpu
            fans.append((on_dask, local, dask_cpu, local_cpu, bare, bare_cpu))
            print(f"  round: dask {on_dask:.1f} s ({beyond(dask_cpu, options)}), process "
                  f"executor {local:.1f} s ({beyond(local_cpu, options)}), bare Dask tasks "
                  f"{bare:.1f} s ({beyond(bare_cpu, options)})", flush=True)
        if fans:
            on_dask, local, dask_cpu, local_cpu, bare, bare_cpu = (
                statistics.median(f[i] for f in fans) for i in range(6))
            print(f"{options.steps} steps of {options.cpu_ms:.0f} ms CPU (median of "
                  f"{len(fans)}): dask ({options.workers} workers) {on_dask:.1f} s, process "
                  f"executor here ({os.cpu_count()} at once) {local:.1f} s, ratio "
                  f"{statistics.median(f[0] / f[1] for f in fans):.2f}, bare Dask tasks "
                  f"{bare:.1f} s; CPU beyond the steps' own: dask {beyond(dask_cpu, options)}, "
                  f"process executor {beyond(local_cpu, options)}, bare Dask tasks "
                  f"{beyond(bare_cpu, options)}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def tree_cpu() -> float:
    """CPU seconds this process and its descendants used so far (those that ended, through
    the parents that reaped them): on a shared machine, what a run cost, whatever the load."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def beyond(cpu: float, options: argparse.Namespace) -> str:
    extra = cpu - options.steps * options.cpu_ms / 1000
    return f"{cpu:.1f} s CPU, {extra / options.steps * 1000:.1f} ms a step beyond its own"


def process_executor(steps: int, cpu_ms: float) -> None:
    fan = [Step(busy, name=f"b{i}") for i in range(steps)]
    cpu = tree_cpu()
    elapsed = wall(fan, cpu_ms, 0.1, executor="process", max_parallel=os.cpu_count())
    print(elapsed, tree_cpu() - cpu)

if __name__ == "__main__":
    main()
