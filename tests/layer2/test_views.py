"""Diagrams through the real `dot`, monitor_trail on the event stream, InteractiveTrail."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from tests.support import wait_states, wait_until
from trail import (
    InteractiveTrail,
    Step,
    definition_dot,
    interactive,
    live_dot,
    monitor_trail,
    render,
    write_trail_definition_as_dot,
)
from trail.layer2.diagram import STATE_COLOURS


def diamond():
    a, b, c, d = (Step(lambda e, x: 1, name=n) for n in "abcd")
    return a >> [b, c] >> d


def dot_json(source: str) -> dict:
    """Parse DOT with graphviz itself: the layout engine reads it back as JSON."""
    assert shutil.which("dot"), "graphviz's dot is required (scripts/setup installs it)"
    out = subprocess.run(["dot", "-Tjson"], input=source, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def nodes_and_edges(parsed: dict) -> tuple[dict[str, dict], set[tuple[str, str]]]:
    objects = parsed.get("objects", [])
    by_id = {o["_gvid"]: o for o in objects}
    nodes = {o["name"]: o for o in objects if "nodes" not in o}
    edges = {(by_id[e["tail"]]["name"], by_id[e["head"]]["name"])
             for e in parsed.get("edges", []) if e.get("style") != "invis"}
    return nodes, edges


def test_a_definition_as_dot_has_the_steps_and_edges(tmp_path):
    out = io.StringIO()
    source = write_trail_definition_as_dot(diamond(), out)
    assert out.getvalue() == source
    nodes, edges = nodes_and_edges(dot_json(source))
    assert {name: node["label"] for name, node in nodes.items()} == {
        "0": "0: a", "1": "1: b", "2": "2: c", "3": "3: d"}
    assert edges == {("0", "1"), ("0", "2"), ("1", "3"), ("2", "3")}
    path = tmp_path / "trail.dot"
    write_trail_definition_as_dot(diamond(), path)
    assert path.read_text() == source


def test_a_live_trail_is_coloured_by_state_and_renders_to_svg(serve, tmp_path):
    a, b = Step(lambda e, x: 1, name="a"), Step(lambda e, x: 1, name="b")
    client = serve(a >> b)
    client.pause(dry_run=False, name="b")
    client.start()
    wait_states(client, {"a": "Succeeded", "b": "Paused"})
    dot = live_dot(client)
    nodes, edges = nodes_and_edges(dot_json(dot.source))
    assert nodes["0"]["fillcolor"] == STATE_COLOURS["Succeeded"]
    assert nodes["1"]["fillcolor"] == STATE_COLOURS["Paused"]
    assert nodes["legend Paused"]["label"] == "Paused"  # the legend names the states shown
    assert "xlabel" not in nodes["0"]  # no state label beside the box for edges to cross
    assert nodes["1"]["tooltip"].startswith("Paused; ")
    assert ("0", "1") in edges
    svg = render(dot, tmp_path / "live.svg")
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "0: a" in text and "1: b" in text
    png = render(definition_dot(diamond()), tmp_path / "d.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(Exception, match="use .dot, .svg, .png or .pdf"):
        render(dot, tmp_path / "x.jpeg")


def test_monitor_trail_sees_a_step_that_lasts_under_a_millisecond(serve, executor):
    client = serve(Step(lambda e, x: "quick", name="blink") >> Step(lambda e, x: 2, name="z"),
                   executor=executor)
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def record(rows):
        for row in rows:
            seen.append((row["Name"], row["State"]))
        ready.set()

    watcher = threading.Thread(target=monitor_trail, args=(
        client, [(lambda rows: rows, record)]),
        kwargs={"status_kwargs": {"fields": ["State", "Return value"], "states": None},
                "until_finished": True}, daemon=True)
    watcher.start()
    assert ready.wait(20), "monitor_trail never reported the initial state"
    client.start()
    wait_states(client, {"blink": "Succeeded", "z": "Succeeded"})
    watcher.join(20)
    assert not watcher.is_alive(), "monitor_trail did not return once the trail finished"
    blink = [state for name, state in seen if name == "blink"]
    assert blink == ["Ready", "Waiting", "Running", "Succeeded"]


def test_monitor_trail_default_states_and_filters(serve):
    client = serve(Step(lambda e, x: 1 / 0, name="bad"))
    client.pause(dry_run=False)
    wait_states(client, {"bad": "Paused"})
    failures, seen = [], threading.Event()
    thread = threading.Thread(target=monitor_trail, args=(client, [
        (lambda rows: rows, lambda rows: seen.set()),
        (lambda rows: [r for r in rows if r["State"] == "Paused due to failure"],
         failures.extend)]), kwargs={"delay": 0.2}, daemon=True)
    thread.start()
    assert seen.wait(20), "monitor_trail did not report the paused step it started with"
    client.resume(dry_run=False)
    wait_until(lambda: failures, "the failure to be reported")
    assert failures[0]["Name"] == "bad"
    assert failures[0]["Return value"] == "ZeroDivisionError: division by zero"
    client.shutdown(dry_run=False)
    thread.join(10)
    assert not thread.is_alive(), "monitor_trail did not return after the server went away"


def test_interactive_trail_prints_for_a_person(serve):
    client = serve(Step(lambda e, x: "fine", name="step_one") >> Step(lambda e, x: 1,
                                                                       name="step_two"))
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    trail = InteractiveTrail(client, console)
    trail.pause(name="step_two")
    text = out.getvalue()
    assert "DRY RUN pause would affect 1 step(s)" in text and "# 1 - step_two" in text
    out.truncate(0), out.seek(0)
    trail.pause(name="step_two", dry_run=False)
    trail.start()
    wait_states(client, {"step_one": "Succeeded", "step_two": "Paused"})
    trail.status()
    text = out.getvalue()
    assert "pause affected 1 step(s)" in text and "start affected" in text
    assert "step_one" in text and "Succeeded" in text and "fine" in text and "Paused" in text
    out.truncate(0), out.seek(0)
    trail.status(fields=["Colour"])
    assert "Error in status:" in out.getvalue() and "'Colour'" in out.getvalue()
    out.truncate(0), out.seek(0)
    trail.status(state="Running")  # the argument is states: an error, not "No step matches"
    assert "Error in status: it takes states=[...]" in out.getvalue()
    out.truncate(0), out.seek(0)
    trail.steps_waiting_for_user_input()
    assert "No step is waiting for input." in out.getvalue()
    namespace: dict = {}
    interactive(client, namespace, console)
    assert namespace["names"].step_two == "step_two"
    out.truncate(0), out.seek(0)
    namespace["resume"](dry_run=False, name=namespace["names"].step_two)
    assert "resume affected 1 step(s)" in out.getvalue()
    wait_states(client, {"step_two": "Succeeded"})


def test_the_live_views_last_line_keeps_the_exit_code_and_stderr_in_view():
    from trail.layer2.cli.follow import short_line

    failed = ("ShellCommandFailedError: [Command: sh -c 'echo x; exit 7'] -- Failed with exit "
              "code: 7, STDERR (Last line): disk full")
    assert short_line(failed) == ("ShellCommandFailedError: Failed with exit code: 7, "
                                  "stderr: disk full")
    assert short_line("[Command: true] [Host: db1] -- Could not start: no such program: x, "
                      "STDERR (Last line): None") == "on db1: Could not start: no such program: x"
    assert short_line("12 rows copied") == "12 rows copied"


def test_a_conditional_step_is_drawn_as_one():
    from trail import create_conditional_step

    guard = create_conditional_step(lambda e, c: True, name="guard")
    after = Step(lambda e, c: None, name="after")
    nodes, _ = nodes_and_edges(dot_json(definition_dot(guard >> after).source))
    assert nodes["0"]["shape"] == "hexagon" and nodes["0"]["label"] == "if 0: guard"
    assert nodes["1"].get("shape", "box") == "box"


def test_the_live_view_of_a_fleet_groups_it_and_reaches_any_step(tmp_path):
    """`trail run` of 2,001 steps in a real terminal: what needs the operator on top (the
    failed drain, the question), a line per phase with its counts, and one step found,
    answered and steered from the view."""
    from tests.support import Tmux

    root = Path(__file__).parents[2]
    book = root / "tests" / "e2e" / "fleet_runbook.py"
    socket_file = str(tmp_path / "fleet.sock")
    tmux = Tmux(f"{sys.executable} -m trail run {book} --socket {socket_file}",
                env={"PYTHONPATH": str(root), "FLEET_HOSTS": "1000"})
    try:
        screen = tmux.wait_for("999 Succeeded  ", timeout=60)
        lines = screen.splitlines()
        top = next(i for i, line in enumerate(lines) if "2 need you" in line)
        assert "approve" in lines[top + 1] and "? Upgrade the fleet now?" in lines[top + 1]
        assert "drain@web17" in lines[top + 2] and "Paused due to failure" in lines[top + 2]
        assert "web17 would not drain" in lines[top + 2]
        drain = next(line for line in lines if "│ drain " in line)
        assert "1000 steps" in drain and "1 Paused due to failure" in drain \
            and "999 Succeeded" in drain
        upgrade = next(line for line in lines if "│ upgrade " in line)
        assert "1000 steps" in upgrade and "1000 Waiting" in upgrade
        assert len([line for line in lines if line.startswith("│")]) < 40  # it fits

        tmux.keys("/")
        tmux.wait_for("filter> ")
        tmux.keys("web123", "Enter")
        tmux.wait_for("2 step(s) match 'web123'")
        wait_until(lambda: "upgrade@web123" in tmux.screen() and "drain@web123" in
                   tmux.screen(), "the two steps of web123")
        tmux.keys("a")  # the question, answered from the view
        tmux.wait_for("approve: Upgrade the fleet now?")
        tmux.keys("yes", "Enter")
        tmux.keys("/")
        tmux.wait_for("filter> ")
        tmux.keys("Enter")  # no filter: the whole run again
        wait_until(lambda: any("│ upgrade " in line and "999 Succeeded" in line
                               for line in tmux.screen().splitlines()),
                   f"the upgrades done but web17's: {tmux.screen()}", timeout=30)
        tmux.keys(":")
        tmux.wait_for("trail> ")
        tmux.keys("skip host=web17", "Enter")  # a tag: the failed drain (and its upgrade)
        screen = tmux.wait_for("EXIT=", timeout=30)
        assert "EXIT=0" in screen, screen
        assert "1999 Succeeded" in screen and "2 Skipped" in screen
    finally:
        tmux.close()


def test_the_live_view_reads_the_status_again_when_a_runs_last_events_were_lost(serve):
    """The live view's events lost at the end of a busy run (no later event shows the gap):
    when the server has sent more than arrived and a second later nothing came, it reads
    the status again rather than show steps running that are done."""
    from trail.layer2.cli.follow import RunView, drain

    # Three events a step, well past what the socket queues hold for a reader that reads
    # nothing meanwhile (the sender's and the receiver's high-water marks, the kernel's
    # buffers, EVENTS_QUEUED each): 1,500 steps were not always enough once events got
    # small, and the queues now hold 10,000 each.
    STEPS = 12_000  # noqa: N806

    steps = [Step(lambda e, c: None, name=f"quick@web{i}", host=f"web{i}") for i in range(STEPS)]
    client = serve(steps, executor="thread")
    view = RunView(client, "flood")
    with client.subscribe() as stream:
        view.load()
        client.start(dry_run=False)  # the view reads nothing while the run floods
        client.wait(timeout=60)
        while drain(view, stream, 0.2):
            pass
        # Events were lost: in the middle of the run (a gap in seq, seen at once and the
        # status read again) or at its end (no later event shows that gap).
        if view.counts() != {"Succeeded": STEPS}:
            view.checked = 0.0  # a second on: the server sent more than came; noted
            drain(view, stream, 0.0)
            assert view.counts() != {"Succeeded": STEPS}
            view.checked = 0.0  # still nothing came: the status is read again
            drain(view, stream, 0.0)
        assert stream.missed > 0, "no event was lost"
        assert view.counts() == {"Succeeded": STEPS}
        assert view.index.layout().done == {"Succeeded": STEPS}  # the grouping follows


def test_a_subscriber_that_reads_nothing_for_a_burst_of_thousands_misses_none(serve):
    """A script reading ``trail events`` slower than a wide run starts (here: not at all
    while 2,000 steps run, 6,000 events) still gets every event: the queues on both sides
    hold 10,000 each (ZeroMQ's default, 1,000, lost most of such a burst)."""
    steps = [Step(lambda e, c: None, name=f"s{i}") for i in range(2000)]
    client = serve(steps, executor="thread")
    with client.subscribe() as stream:
        client.start(dry_run=False)
        client.wait(timeout=60)
        while stream.next(1.0) is not None:
            pass
        stream.settle(client.info()["published"])
        assert stream.missed == 0
        succeeded = client.info()["counts"].get("Succeeded")
    assert succeeded == 2000


def test_the_plain_view_of_a_fleet_starts_with_counts_not_a_line_per_step(tmp_path):
    root = Path(__file__).parents[2]
    book = root / "tests" / "e2e" / "fleet_runbook.py"
    result = subprocess.run(
        [sys.executable, "-m", "trail", "run", str(book), "--plain", "--fail-fast",
         "--socket", str(tmp_path / "plain.sock")], capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(root), "FLEET_HOSTS": "30"})
    assert result.returncode == 1, result.stdout + result.stderr  # drain@web17 failed
    lines = result.stdout.splitlines()
    assert lines[1].endswith("61 steps: 61 Ready (a line for each change from here on)")
    assert not any(line.endswith(" Ready") for line in lines)
    assert any("drain@web17" in line and "Paused due to failure" in line for line in lines)
