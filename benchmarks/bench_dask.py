"""The dask executor's cost per step, and many CPU-bound steps on a cluster vs one machine.

    python benchmarks/bench_dask.py [--chain 100] [--steps 1000] [--cpu-ms 50] [--workers 4]

Per-step overhead: a chain of steps that do nothing, run on a LocalCluster (processes), wall
time per step, against a bare ``client.submit(f).result()`` floor measured in the same run.
Throughput: ``--steps`` independent steps each burning ``--cpu-ms`` of CPU, on ``--workers``
single-threaded workers, and under the process executor on this machine (``max_parallel``
= the machine's CPUs). On one machine the cluster shares its cores: the throughput figure
means something only with workers on other hosts (``--scheduler tcp://host:8786``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from trail import Step, TrailClient, TrailServer


def noop(trail_env: object, context: object) -> int:
    return 1


def bare() -> int:
    return 1


def burn(ms: float) -> None:
    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass


def busy(trail_env: object, context: float) -> None:
    burn(context)


def wall(definition: object, context: object = None, **options: object) -> float:
    server = TrailServer(definition, context=context, journal=False, **options)  # type: ignore[arg-type]
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=30)
    started = time.monotonic()
    client.start()
    while not client.info()["finished"]:
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    client.shutdown(dry_run=False)
    server.join(30)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--cpu-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scheduler", help="an existing cluster (default: a LocalCluster)")
    options = parser.parse_args()

    from distributed import Client, LocalCluster

    os.environ["PYTHONPATH"] = str(Path(__file__).parents[1])  # workers import this trail
    cluster = None
    if options.scheduler:
        client = Client(options.scheduler)
    else:
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    try:
        client.submit(bare, pure=False).result()
        started = time.monotonic()
        for _ in range(options.chain):
            client.submit(bare, pure=False).result()
        floor = (time.monotonic() - started) / options.chain
        steps = [Step(noop, name=f"s{i}") for i in range(options.chain)]
        per = wall(list(zip(steps, steps[1:], strict=False)), executor="dask",
                   dask=client) / options.chain
        print(f"per step: dask executor {per * 1000:.1f} ms, bare submit().result() "
              f"{floor * 1000:.1f} ms, ratio {per / floor:.2f}x")

        fan = [Step(busy, name=f"b{i}") for i in range(options.steps)]
        on_dask = wall(fan, options.cpu_ms, executor="dask", dask=client)
        fan = [Step(busy, name=f"b{i}") for i in range(options.steps)]
        local = wall(fan, options.cpu_ms, executor="process", max_parallel=os.cpu_count())
        print(f"{options.steps} steps of {options.cpu_ms:.0f} ms CPU: dask {on_dask:.1f} s, "
              f"process executor here {local:.1f} s")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
