"""End-to-end: the AutoTrail diamond (a -> b -> c -> d -> g, a -> e -> f -> g) and a single
step, steered through the public API only, against a real server on a real socket."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    lines,
    names,
    pid_alive,
    states,
    wait_pids,
    wait_states,
    wait_until,
)
from trail import Step, TrailClient, TrailClientError, TrailConnectionError

ALL = "abcdefg"
BY_N = "abecfdg"  # AutoTrail's numbering of this definition: breadth first from a


def appender(name: str):
    def action(trail_env, context):
        with open(context, "a") as log:
            log.write(name + "\n")
        return name.upper()

    return action


def diamond(log: Path, **options: Any) -> list[tuple[Step, Step]]:
    a, b, c, d, e, f, g = (Step(appender(x), name=x, **options) for x in ALL)
    return [(a, b), (b, c), (c, d), (d, g), (a, e), (e, f), (f, g)]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "ran.log"


def check_dry_run(client: TrailClient, method: str, expected: list[str], **kwargs: Any):
    """The dry run names the steps and changes nothing; the real call names the same."""
    before = states(client)
    dry = getattr(client, method)(dry_run=True, **kwargs)
    assert sorted(names(dry)) == sorted(expected), f"{method} dry run"
    assert states(client) == before, f"{method} dry run changed states"
    real = getattr(client, method)(dry_run=False, **kwargs)
    assert sorted(names(real)) == sorted(expected), f"{method}"
    return real


def test_the_diamond_runs_in_order_once_each(serve, executor, log):
    client = serve(diamond(log), context=str(log), executor=executor)
    assert states(client) == dict.fromkeys(ALL, "Ready")
    assert names(client.start()) == list(BY_N)
    wait_states(client, dict.fromkeys(ALL, "Succeeded"))
    ran = lines(log)
    assert sorted(ran) == sorted(ALL)
    for parent, child in ["ab", "bc", "cd", "dg", "ae", "ef", "fg"]:
        assert ran.index(parent) < ran.index(child)
    rows = client.status(name="g")
    assert rows == [{"n": 6, "Name": "g", "State": "Succeeded", "Waiting for response": None,
                     "Output messages": [], "Return value": "G"}]


def test_list_and_status_shapes(serve, log):
    client = serve(diamond(log, tier="web"), context=str(log))
    listed = client.list()
    assert listed[0] == {"name": "a", "n": 0, "tier": "web"}
    assert [t["n"] for t in listed] == list(range(7))
    assert client.list(name="nope") == []
    assert client.list(colour="blue") == []  # an unknown tag selects nothing
    assert [t["name"] for t in listed] == list(BY_N)
    rows = client.status(fields=["Tags", "State", "Prompt messages", "Input messages"],
                         states=["Ready"], name="c")
    assert rows == [{"n": 3, "Name": "c", "Tags": {"name": "c", "n": 3, "tier": "web"},
                     "State": "Ready", "Prompt messages": [], "Input messages": []}]
    assert client.status(states=["Running"]) == []


def test_pause_before_start_then_resume(serve, executor, log):
    client = serve(diamond(log), context=str(log), executor=executor)
    check_dry_run(client, "pause", list(ALL))
    # The root is reached at once (no parent to wait for), so its pause takes effect.
    wait_states(client, {"a": "Paused", **dict.fromkeys("bcdefg", "To Pause")})
    assert client.start() == []  # nothing is Ready any more
    time.sleep(0.2)
    assert lines(log) == [] and states(client)["b"] == "To Pause"
    check_dry_run(client, "resume", list(ALL))
    wait_states(client, dict.fromkeys(ALL, "Succeeded"))


def test_next_step_walks_a_paused_trail_one_step_at_a_time(serve, executor, log):
    client = serve(diamond(log), context=str(log), executor=executor)
    client.pause(dry_run=False)
    client.start()
    for name in BY_N:  # the first paused step by n, each time
        wait_states(client, {name: "Paused"})
        assert client.next_step(step_count=0, dry_run=False) == []
        check_dry_run(client, "next_step", [name], step_count=1)
        wait_states(client, {name: "Succeeded"})
        assert lines(log)[-1] == name
    assert lines(log) == list(BY_N)


def test_pause_and_resume_a_branch(serve, executor, log):
    client = serve(diamond(log), context=str(log), executor=executor)
    # g also waits on d, outside e's branch: it is left alone.
    check_dry_run(client, "pause_branch", ["e", "f"], name="e")
    client.start()
    wait_states(client, {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded",
                         "d": "Succeeded", "e": "Paused", "f": "To Pause", "g": "Waiting"})
    check_dry_run(client, "resume_branch", ["e", "f"], name="e")
    wait_states(client, dict.fromkeys(ALL, "Succeeded"))


def test_skip_and_unskip(serve, executor, log):
    client = serve(diamond(log), context=str(log), executor=executor)
    check_dry_run(client, "skip", ["c"], name="c")
    check_dry_run(client, "skip", ["f"], name="f")
    check_dry_run(client, "unskip", ["f"], name="f")
    assert states(client)["f"] == "Waiting"
    client.start()
    wait_states(client, {**dict.fromkeys("abdefg", "Succeeded"), "c": "Skipped"})
    assert "c" not in lines(log)
    assert client.skip(dry_run=False, name="c") == []  # already done


def test_block_and_unblock(serve, executor, log):
    client = serve(diamond(log), context=str(log), executor=executor)
    check_dry_run(client, "block", ["e"], name="e")
    client.start()
    wait_states(client, {**dict.fromkeys("abcd", "Succeeded"), "e": "Blocked",
                         "f": "Waiting", "g": "Waiting"})
    info = client.info()
    # f and g wait on e: the run is idle but stays open, for the operator to unblock e.
    assert (info["finished"], info["idle"]) == (False, True)
    assert info["waiting_for"] == {"Blocked": [[2, "e"]]}  # AutoTrail numbering: a,b,e,c,f,d,g
    assert info["waiting_counts"] == {"Blocked": 1}
    assert "f" not in lines(log)
    check_dry_run(client, "unblock", ["e"], name="e")
    wait_states(client, dict.fromkeys(ALL, "Succeeded"))


def sleeper(marker: Path):
    """Sleeps 60 s on its first run, finishes at once on the next; writes its pid."""

    def action(trail_env, context):
        first = not marker.exists()
        marker.write_text(str(os.getpid()))
        trail_env.output(f"pid {os.getpid()}")
        if first:
            time.sleep(60)
        return "second run"

    return action


def test_interrupt_a_sleeping_step_kills_it_and_resume_runs_it_again(serve, tmp_path):
    marker = tmp_path / "pid"
    client = serve(Step(sleeper(marker), name="nap"))
    client.start()
    wait_states(client, {"nap": "Running"})
    [pid] = wait_pids(marker, "the step to write its pid")
    assert pid_alive(pid)
    check_dry_run(client, "interrupt", ["nap"], name="nap")
    assert states(client) == {"nap": "Interrupted"}
    wait_until(lambda: not pid_alive(pid), "the step's process to be gone", timeout=1.0)
    check_dry_run(client, "resume", ["nap"], name="nap")
    wait_states(client, {"nap": "Succeeded"})
    assert client.status()[0]["Return value"] == "second run"


def flaky(flag: Path):
    def action(trail_env, context):
        if not flag.exists():
            raise RuntimeError(f"{flag.name} is missing")
        return "fixed"

    return action


def test_a_raising_step_pauses_its_branch_until_rerun(serve, executor, tmp_path, log):
    flag = tmp_path / "flag"
    pairs = diamond(log)
    b = pairs[0][1]
    b.action_function = flaky(flag)
    client = serve(pairs, context=str(log), executor=executor)
    client.start()
    wait_states(client, {"b": "Paused due to failure", **dict.fromkeys("cdg", "Waiting"),
                         **dict.fromkeys("aef", "Succeeded")})
    assert "c" not in lines(log) and "d" not in lines(log)
    row = client.status(name="b")[0]
    assert row["Return value"] == "RuntimeError: flag is missing"
    flag.write_text("")
    check_dry_run(client, "rerun", ["b"], name="b")
    wait_states(client, dict.fromkeys(ALL, "Succeeded"))
    assert client.status(name="b")[0]["Return value"] == "fixed"


def test_without_pause_on_fail_a_step_fails_and_can_be_rerun(serve, executor, tmp_path):
    flag = tmp_path / "flag"
    step = Step(flaky(flag), name="x")
    client = serve(step, executor=executor)
    check_dry_run(client, "unset_pause_on_fail", ["x"])
    client.start()
    wait_states(client, {"x": "Failed"})
    assert client.info()["finished"] is True
    flag.write_text("")
    client.rerun(dry_run=False)
    wait_states(client, {"x": "Succeeded"})
    assert client.set_pause_on_fail(dry_run=False) == []  # finished steps keep their flag


def asker(trail_env, context):
    trail_env.output("about to ask")
    answer = trail_env.input("Proceed with the fail-over?")
    trail_env.output(f"got {answer!r}")
    return answer


def test_a_prompt_answered_with_send_message_to_steps(serve, executor):
    client = serve(Step(asker, name="ask"), executor=executor)
    client.start()
    waiting = wait_until(client.steps_waiting_for_user_input, "a prompt")
    assert waiting == [{"n": 0, "Name": "ask",
                        "Waiting for response": "Proceed with the fail-over?"}]
    # Output sent before the prompt is visible while the step still runs.
    row = client.status()[0]
    assert row["State"] == "Running" and row["Output messages"] == ["about to ask"]
    check_dry_run(client, "send_message_to_steps", ["ask"], message={"go": True}, name="ask")
    wait_states(client, {"ask": "Succeeded"})
    row = client.status(fields=["Return value", "Input messages", "Prompt messages",
                                "Output messages", "Waiting for response"])[0]
    assert row["Return value"] == {"go": True}
    assert row["Input messages"] == [{"go": True}]
    assert row["Prompt messages"] == ["Proceed with the fail-over?"]
    assert row["Output messages"] == ["about to ask", "got {'go': True}"]
    assert row["Waiting for response"] is None
    assert client.steps_waiting_for_user_input() == []


def test_send_message_reaches_only_running_steps(serve, log):
    client = serve(diamond(log), context=str(log))
    assert client.send_message_to_steps("hi", dry_run=False) == []


def test_stop_interrupts_running_steps_and_blocks_the_rest(serve, tmp_path):
    marker = tmp_path / "pid"
    nap = Step(sleeper(marker), name="nap")
    after = Step(appender("after"), name="after")
    other = Step(appender("other"), name="other")
    client = serve([(nap, after), (other, after)], context=str(tmp_path / "log"))
    client.pause(dry_run=False, name="other")
    client.start()
    wait_states(client, {"nap": "Running", "other": "Paused"})
    assert names(client.stop()) == ["nap"]
    assert states(client)["nap"] == "Running"  # a dry run
    assert names(client.stop(dry_run=False)) == ["nap"]
    wait_states(client, {"nap": "Blocked", "after": "To Block", "other": "Blocked"})
    info = client.info()
    assert (info["finished"], info["idle"], info["end"]) == (False, True, None)


def test_shutdown_stops_the_server_and_removes_its_sockets(serve, log):
    client = serve(diamond(log), context=str(log))
    server = client.server
    assert client.shutdown() is False and server.serving  # dry run
    assert client.shutdown(dry_run=False) is True
    assert server.join(10)
    assert not os.path.exists(server.socket_file)
    assert not os.path.exists(server.events_file)
    with pytest.raises(TrailConnectionError, match=server.socket_file):
        TrailClient(server.socket_file, timeout=1).status()


def test_a_refused_call_raises_with_the_servers_message(serve, log):
    client = serve(diamond(log), context=str(log))
    with pytest.raises(TrailClientError, match="'fields'") as caught:
        client.status(fields=["Colour"])
    assert caught.value.type == "ProtocolError"
    assert len(client.status()) == 7  # the server keeps serving


def test_single_step_trail(serve, executor):
    client = serve(Step(lambda env, ctx: ctx * 2, name="double"), context=21,
                   executor=executor)
    client.start()
    wait_states(client, {"double": "Succeeded"})
    assert client.status()[0]["Return value"] == 42
    assert client.info()["finished"] is True


def test_info_names_the_first_waiting_steps_and_counts_them_all(serve):
    """A wide trail not started: info() names 20 of its Ready steps and counts every one
    (a reply listing 100,000 would be megabytes, at every look)."""
    client = serve([Step(lambda env, context: None, name=f"s{i}") for i in range(50)])
    info = client.info()
    assert info["waiting_counts"] == {"Ready": 50}
    assert info["waiting_for"]["Ready"] == [[i, f"s{i}"] for i in range(20)]
