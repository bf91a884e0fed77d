"""Retries against a real server, max_parallel, pools and priorities (back-off timing is
tested on a MockClock in test_run.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support import wait_states, wait_until
from trail import DefinitionError, Step


def flaky(counter: Path, succeed_on: int, error: type[Exception] = ConnectionError):
    def action(trail_env, context):
        with open(counter, "a") as out:
            out.write("x")
        tries = len(counter.read_text())
        if tries < succeed_on:
            raise error(f"try {tries} failed")
        return f"ok on try {tries}"

    return action


def test_out_of_retries_the_step_fails(serve, tmp_path):
    counter = tmp_path / "count"
    client = serve(Step(flaky(counter, 10), name="hopeless", retries=2, retry_delay=0.05))
    client.start()
    wait_states(client, {"hopeless": "Paused due to failure"})
    assert len(counter.read_text()) == 3
    row = client.status(fields=["Attempt", "Return value"])[0]
    assert row == {"n": 0, "Name": "hopeless", "Attempt": "3 of 3",
                   "Return value": "ConnectionError: try 3 failed"}
    client.rerun(dry_run=False)  # an operator's rerun gets a fresh set of attempts
    wait_until(lambda: len(counter.read_text()) == 6, "three more attempts")
    wait_states(client, {"hopeless": "Paused due to failure"})


def test_retry_on_picks_the_errors_worth_retrying(serve, tmp_path):
    counter = tmp_path / "count"
    step = Step(flaky(counter, 5, ValueError), name="picky", retries=5, retry_delay=0.05,
                retry_on=lambda error: isinstance(error, ConnectionError))
    client = serve(step)
    client.start()
    wait_states(client, {"picky": "Paused due to failure"})
    assert len(counter.read_text()) == 1  # a ValueError is not retried


def recorder(log: Path, name: str, hold: float = 0.3):
    def action(trail_env, context):
        with open(log, "a") as out:
            out.write(f"start {name} {time.time()}\n")
        time.sleep(hold)
        with open(log, "a") as out:
            out.write(f"end {name} {time.time()}\n")
        return os.getpid()

    return action


def most_at_once(log: Path, names: set[str] | None = None) -> int:
    events = []
    for line in log.read_text().splitlines():
        kind, name, stamp = line.split()
        if names is None or name in names:
            events.append((float(stamp), 0 if kind == "end" else 1))
    running = peak = 0
    for _, starts in sorted(events):
        running += 1 if starts else -1
        peak = max(peak, running)
    return peak


def test_max_parallel_caps_running_steps_and_priority_orders_them(serve, executor, tmp_path):
    log = tmp_path / "log"
    steps = [Step(recorder(log, f"s{i}"), name=f"s{i}", priority=i) for i in range(6)]
    client = serve(steps, executor=executor, max_parallel=2)
    client.start()
    wait_states(client, {f"s{i}": "Succeeded" for i in range(6)})
    assert most_at_once(log) == 2
    starts = [line.split()[1] for line in log.read_text().splitlines()
              if line.startswith("start")]
    # Highest priority first when slots are short (the two in a pair start together, so
    # their order within the pair is the threads' race).
    assert set(starts[:2]) == {"s5", "s4"} and set(starts[2:4]) == {"s3", "s2"}


def test_pools_cap_steps_by_tag(serve, tmp_path):
    log = tmp_path / "log"
    db = [Step(recorder(log, f"db{i}"), name=f"db{i}", pool="db") for i in range(4)]
    web = [Step(recorder(log, f"web{i}"), name=f"web{i}") for i in range(3)]
    client = serve([*db, *web], pools={"db": 2})
    client.start()
    wait_states(client, dict.fromkeys([s.name for s in db + web], "Succeeded"))
    assert most_at_once(log, {f"db{i}" for i in range(4)}) == 2
    assert most_at_once(log) >= 4  # the web steps were not held back


def test_steps_can_size_their_own_pool_and_the_server_overrides_it(serve, tmp_path):
    log = tmp_path / "log"
    steps = [Step(recorder(log, f"s{i}"), name=f"s{i}", pool="hosts", pool_size=1)
             for i in range(3)]
    client = serve(steps)
    client.start()
    wait_states(client, {f"s{i}": "Succeeded" for i in range(3)})
    assert most_at_once(log) == 1
    log.unlink()
    client = serve([Step(recorder(log, f"t{i}"), name=f"t{i}", pool="hosts", pool_size=1)
                    for i in range(4)], pools={"hosts": 2})
    client.start()
    wait_states(client, {f"t{i}": "Succeeded" for i in range(4)})
    assert most_at_once(log) == 2


def test_steps_that_disagree_on_a_pool_size_are_refused_by_name(serve):
    steps = [Step(lambda e, c: 1, name="a", pool="db", pool_size=1),
             Step(lambda e, c: 1, name="b", pool="db", pool_size=3)]
    with pytest.raises(DefinitionError, match="'a' and 'b' of pool 'db' disagree.*1 vs 3"):
        serve(steps)
    with pytest.raises(ValueError, match="pool_size needs a pool tag"):
        Step(lambda e, c: 1, pool_size=2)


def test_a_wide_trail_runs_every_step_once_within_its_caps():
    """More steps than one wake-up moves (a fleet's fan): every step runs exactly once,
    max_parallel and the pool hold at every moment, and the higher priority goes first."""
    from trail.layer1.events import StateChanged
    from trail.layer1.settings import Settings
    from trail.testing import InProcessTrail

    ran: list[str] = []

    def work(name: str):
        return lambda trail_env, context: ran.append(name)

    root = Step(work("root"), name="root")
    hosts = [Step(work(f"host{i}"), name=f"host{i}", priority=1 if i >= 1190 else 0,
                  **({"pool": "db"} if i % 2 else {})) for i in range(1200)]
    settings = Settings(executor="thread", max_parallel=4, pools={"db": 1})
    with InProcessTrail([(root, host) for host in hosts], settings=settings) as trail:
        trail.client.start()
        trail.run_until(lambda: trail.run.standing.counts().get("Succeeded") == 1201,
                        "every step's success", timeout=120)
    running: set[str] = set()
    most = most_db = 0
    started: list[str] = []
    for event in trail.events:
        if not isinstance(event, StateChanged):
            continue
        if event.state == "Running":
            running.add(event.name)
            started.append(event.name)
        elif event.previous == "Running":
            running.discard(event.name)
        most = max(most, len(running))
        most_db = max(most_db, sum(1 for name in running if int(name[4:] or 0) % 2))
    assert len(ran) == len(set(ran)) == 1201 and len(started) == 1201
    assert most == 4 and most_db == 1
    # The first to start after the root, four at once, are four of the ten that go first.
    assert set(started[1:5]) <= {f"host{i}" for i in range(1190, 1200)}
