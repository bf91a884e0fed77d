"""Gate steps (``Step(gate=True)``): they run once their parents have settled, failures
included, see which steps above them failed, and a failure above a gate holds up nothing
below it. Rolling updates (trail.layer2.steps.rolling) are built on them."""

from __future__ import annotations

import pytest

from tests.support import wait_states
from trail import Step


def ok(trail_env, context):
    return "ok"


def boom(trail_env, context):
    raise RuntimeError("boom")


def failures(trail_env, context):
    return sorted(trail_env.failed_above)


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_a_gate_runs_after_failures_above_it_and_sees_them(serve, executor):
    a1, a2 = Step(ok, name="a1"), Step(boom, name="a2", pause_on_fail=False)
    b1, b2 = Step(ok, name="b1"), Step(ok, name="b2")  # b2 waits below a failure
    gate = Step(failures, name="gate", gate=True)
    after = Step(ok, name="after")
    client = serve([(a1, b1), (a2, b2), (b1, gate), (b2, gate), (gate, after)],
                   executor=executor)
    client.start()
    ended = client.wait(timeout=30)
    assert ended == {"Succeeded": 4, "Failed": 1, "Waiting": 1}
    rows = {row["Name"]: row for row in client.status(fields=["State", "Return value"])}
    assert rows["gate"]["Return value"] == ["a2"]
    assert rows["after"]["State"] == "Succeeded"
    assert rows["b2"]["State"] == "Waiting"  # never run, and not reported otherwise
    assert client.info()["end"] == "failed"


def test_a_gate_waits_for_a_paused_failure_and_a_failed_gate_holds_up_what_is_below(serve):
    paused = Step(boom, name="paused")  # pauses on failure: the operator decides
    gate = Step(failures, name="gate", gate=True)
    stop = Step(boom, name="stop", gate=True, pause_on_fail=False)
    after = Step(ok, name="after")
    client = serve([(paused, gate), (gate, stop), (stop, after)])
    client.start()
    wait_states(client, {"paused": "Paused due to failure", "gate": "Waiting"})
    assert client.info()["idle"]
    client.skip(dry_run=False, name="paused")
    client.wait(timeout=30)
    rows = {row["Name"]: row for row in client.status(fields=["State", "Return value"])}
    assert rows["gate"]["State"] == "Succeeded" and rows["gate"]["Return value"] == []
    assert rows["stop"]["State"] == "Failed"
    assert rows["after"]["State"] == "Waiting"
    assert client.info()["end"] == "failed"


def test_below_a_failed_gate_nothing_runs_not_even_the_next_gate(serve):
    first = Step(boom, name="first", gate=True, pause_on_fail=False)
    host = Step(ok, name="host")
    second = Step(failures, name="second", gate=True)
    after = Step(ok, name="after")
    client = serve([(first, host), (host, second), (second, after)], executor="thread")
    client.start()
    assert client.wait(timeout=30) == {"Failed": 1, "Waiting": 3}
    assert client.info()["end"] == "failed"
