"""Rolling updates over SSH against the tests' sshd: batches that move through every phase
before the next starts, never more hosts in the rollout than a batch, a failure threshold
that pauses the rollout on a question (going on or stopping as the operator says), a
canary that stops everything, and a stop mid-batch that leaves nothing on the hosts."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.remote.sshd import ALIASES
from tests.remote.test_ssh import pgrep
from tests.support import wait_states, wait_until
from trail import Hosts, Step, on_hosts, rolling

WEB = tuple(f"web{i}" for i in range(1, 7))  # six more aliases of the same sshd


@pytest.fixture(scope="module")
def fleet(sshd, tmp_path_factory) -> Hosts:
    """Six "hosts" web1..web6 (aliases of the tests' sshd), the ssh config given once."""
    config = tmp_path_factory.mktemp("fleet") / "ssh_config"
    text = sshd.config.read_text()
    aliases = f"Host {' '.join(ALIASES)}"
    assert aliases in text, "the sshd's config names its aliases"
    config.write_text(text.replace(aliases, f"Host {' '.join(ALIASES + WEB)}", 1))
    return Hosts(WEB, ssh_options=["-F", str(config)], connect_timeout=20)


def logged(log: Path, phase: str, hold: float = 0.3, fail_on: tuple[str, ...] = ()) -> str:
    """A phase's command: writes "phase start host", waits, writes "phase end host" (or
    fails on the hosts named). Appends land in the order they happen."""
    fail = f'case {{host}} in {"|".join(fail_on)}) exit 3;; esac; ' if fail_on else ""
    return (f"echo '{phase} start {{host}}' >> {log}; {fail}sleep {hold}; "
            f"echo '{phase} end {{host}}' >> {log}")


def events(log: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


def answer_when_asked(client, gate: str, reply: str) -> str:
    def asked():
        row = client.status(fields=["State", "Prompt messages"], name=gate)[0]
        return row["Prompt messages"][-1] if row["State"] == "Running" and \
            row["Prompt messages"] else None
    question = wait_until(asked, f"{gate} to ask")
    client.send_message_to_steps(reply, dry_run=False, name=gate)
    return question


def test_batches_move_through_every_phase_before_the_next_batch_starts(serve, fleet, tmp_path):
    log = tmp_path / "log"
    phases = [(phase, logged(log, phase, 0.1)) for phase in ("drain", "restart", "check")]
    rollout = fleet.rolling(phases, name="deploy", batch=3)
    assert rollout.batches == [("batch 1", ["web1", "web2", "web3"]),
                               ("batch 2", ["web4", "web5", "web6"])]
    done = Step(lambda env, ctx: "rolled", name="done")
    client = serve(rollout >> done)
    client.start()
    assert client.wait(timeout=60) == {"Succeeded": 6 * 3 + 2 + 1}
    seen = events(log)
    assert len(seen) == 6 * 3 * 2
    in_rollout: set[str] = set()
    finished: list[str] = []
    for phase, what, host in seen:
        if phase == "drain" and what == "start":
            batch = WEB.index(host) // 3
            # A batch starts only once every host of the batch before is through check.
            assert sorted(finished) == list(WEB[:3 * batch]), (host, finished)
            in_rollout.add(host)
        if phase == "check" and what == "end":
            in_rollout.remove(host)
            finished.append(host)
        assert len(in_rollout) <= 3
    for host in WEB:  # each host's phases in order
        mine = [(phase, what) for phase, what, h in seen if h == host]
        assert mine == [("drain", "start"), ("drain", "end"), ("restart", "start"),
                        ("restart", "end"), ("check", "start"), ("check", "end")]
    gate = client.status(fields=["Return value"], name="deploy/batch2")[0]["Return value"]
    assert gate == "0 of 3 hosts of batch 2 of 2 failed"
    assert {row["Name"] for row in client.status(batch=2)} == {
        f"{phase}@{host}" for phase in ("drain", "restart", "check")
        for host in WEB[3:]} | {"deploy/batch2"}


@pytest.mark.parametrize("reply", ["yes", "no"])
def test_too_many_failures_pause_the_rollout_on_a_question(serve, fleet, tmp_path, reply):
    log = tmp_path / "log"
    restart = on_hosts(fleet, logged(log, "restart", 0.1, fail_on=("web2", "web3")),
                       name="restart", batch=3, max_fail=1)
    client = serve(restart)
    client.start()
    question = answer_when_asked(client, "restart/batch1", reply)
    assert question == ("2 of 3 hosts of batch 1 of 2 failed (web2, web3), more than "
                        "max_fail=1 allows. Go on with the rollout? yes / no")
    client.wait(timeout=60)
    rows = {row["Name"]: row for row in client.status(fields=["State", "Return value"])}
    # The failed hosts stay Failed, whatever the operator decided.
    assert rows["restart@web2"]["State"] == rows["restart@web3"]["State"] == "Failed"
    assert rows["restart@web1"]["State"] == "Succeeded"
    later = ("web4", "web5", "web6")
    if reply == "yes":
        assert rows["restart/batch1"]["State"] == "Succeeded"
        assert "the operator went on" in rows["restart/batch1"]["Return value"]
        assert all(rows[f"restart@{h}"]["State"] == "Succeeded" for h in later)
    else:
        assert rows["restart/batch1"]["State"] == "Failed"
        assert "RolloutStoppedError" in rows["restart/batch1"]["Return value"]
        assert all(rows[f"restart@{h}"]["State"] == "Waiting" for h in later)
        assert rows["restart/batch2"]["State"] == "Waiting"  # nothing below a stop runs
        assert not any(host in later for _, _, host in events(log))  # never started
    assert client.info()["end"] == "failed"


def test_within_max_fail_the_rollout_goes_on_and_a_percentage_counts_the_batch(
        serve, fleet, tmp_path):
    log = tmp_path / "log"
    steps = rolling(fleet, {"restart": logged(log, "restart", 0.05, fail_on=("web4",))},
                    name="r", batch="50%", max_fail="34%", on_max_fail="stop")
    client = serve(steps)
    client.start()
    assert client.wait(timeout=60) == {"Succeeded": 7, "Failed": 1}
    gate = client.status(fields=["Return value"], name="r/batch2")[0]["Return value"]
    assert gate == "1 of 3 hosts of batch 2 of 2 failed (web4)"


def test_a_failing_canary_stops_the_rollout(serve, fleet, tmp_path):
    log = tmp_path / "log"
    phases = [("restart", logged(log, "restart", 0.05)),
              ("check", logged(log, "check", 0.05, fail_on=("web1",)))]
    client = serve(fleet.rolling(phases, name="deploy", canary=1, batch=5, max_fail=5))
    client.start()
    client.wait(timeout=60)
    rows = {row["Name"]: row for row in client.status(fields=["State", "Return value"])}
    assert rows["check@web1"]["State"] == "Failed"
    assert rows["deploy/canary"]["State"] == "Failed"
    assert rows["deploy/canary"]["Return value"] == (
        "RolloutStoppedError: the rollout 'deploy' stopped: 1 of 1 hosts of the canary "
        "failed (web1), more than a canary allows")
    assert {host for _, _, host in events(log)} == {"web1"}  # nothing else ran
    assert client.info()["end"] == "failed"


def test_interrupting_mid_batch_leaves_no_process_on_the_hosts(serve, fleet):
    marker = f"trail-mark-{uuid.uuid4().hex}"
    phases = [("drain", "true"),
              ("restart", f"echo started; sh -c 'sleep 600; :' {marker}-{{host}}"),
              ("check", "true")]
    client = serve(fleet.rolling(phases, name="deploy", batch=3))
    client.start()
    # Waited for through the trail, not pgrep: a step forked while this process starts a
    # subprocess would hold that subprocess's exec pipe (the server runs in this process).
    def restarted() -> bool:
        rows = client.status(fields=["Output messages"], phase="restart", batch=1)
        return len(rows) == 3 and all("[STDOUT] -- started" in row["Output messages"]
                                      for row in rows)

    wait_until(restarted, "the first batch's three restarts to run on the hosts")
    wait_until(lambda: len(pgrep("-f", f"sleep 600; : {marker}")) == 3,
               "the three remote commands")
    client.interrupt(dry_run=False)
    wait_states(client, {f"restart@{host}": "Interrupted" for host in WEB[:3]})
    wait_until(lambda: not pgrep("-f", marker), "no process of the rollout left on the hosts")
    # The batch is held, not settled: its gate waits and the next batch does not start.
    assert client.info()["idle"]
    rows = {row["Name"]: row["State"] for row in client.status(fields=["State"])}
    assert rows["deploy/batch1"] == "Waiting"
    assert all(rows[f"drain@{host}"] == "Waiting" for host in WEB[3:])
