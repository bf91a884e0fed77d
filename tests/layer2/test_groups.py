"""Grouping a big run for a person (trail.layer2.groups) and the live view's frames of it,
rendered by rich into text as a terminal would show them."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from trail.layer1.events import Prompt, StateChanged
from trail.layer1.wire import StatusField as F
from trail.layer2.cli.follow import RunView
from trail.layer2.cli.liveview import Steering, render
from trail.layer2.groups import Filter, Index, arrange


def fleet(hosts: int, phases: tuple[str, ...] = ("drain", "upgrade")) -> list[dict[str, Any]]:
    """Status rows of a runbook over a fleet: a step per host per phase, as on_hosts names
    and tags them, every one Ready; then ``verify``, a step of its own."""
    rows = []
    for phase in phases:
        for i in range(hosts):
            n, name = len(rows), f"{phase}@web{i}"
            rows.append({F.N: n, F.NAME: name, F.STATE: "Ready", F.UNREPLIED_PROMPT_MESSAGE: None,
                         F.STARTED_AT: None, F.FINISHED_AT: None, F.OUTPUT_MESSAGES: [],
                         F.PROMPT_MESSAGES: [], F.INPUT_MESSAGES: [],
                         F.TAGS: {"n": n, "name": name, "host": f"web{i}", "phase": phase,
                                  "rack": f"r{i % 3}"}})
    n = len(rows)
    rows.append({**rows[0], F.N: n, F.NAME: "verify", F.OUTPUT_MESSAGES: [],
                 F.TAGS: {"n": n, "name": "verify"}})
    return rows


def with_states(rows: list[dict[str, Any]], **states: str) -> list[dict[str, Any]]:
    by_name = {row[F.NAME]: row for row in rows}
    for name, state in states.items():
        by_name[name.replace("__", "@")][F.STATE] = state
    return rows


def test_failures_and_questions_come_first_then_running_then_groups_done_counted():
    rows = with_states(fleet(4), drain__web0="Succeeded", drain__web1="Succeeded",
                       drain__web2="Paused due to failure", drain__web3="Running",
                       upgrade__web0="Running", upgrade__web1="Failed", verify="Succeeded")
    layout = arrange({row[F.N]: row for row in rows}, asking={3})
    assert layout.attention == [3, 2, 5]  # the question, then the failures by n
    assert layout.running == [4]  # drain@web3 asks: it is listed once, among the first
    assert [g.key for g in layout.groups] == ["drain", "upgrade"]
    assert layout.groups[0].counts == {"Succeeded": 2, "Paused due to failure": 1,
                                       "Running": 1}
    assert layout.groups[0].ordered_counts()[0] == ("Paused due to failure", 1)
    assert [g.key for g in layout.done_groups] == ["verify"]
    assert layout.done == {"Succeeded": 3}


def test_groups_by_a_tag_and_steps_without_it():
    layout = arrange({row[F.N]: row for row in fleet(6)}, by="rack")
    assert [(g.key, len(g.steps)) for g in layout.groups] == [
        ("r0", 4), ("r1", 4), ("r2", 4), ("(no rack)", 1)]


def test_an_index_followed_through_changes_equals_one_read_afresh():
    rows = {row[F.N]: row for row in fleet(50)}
    index = Index()
    index.reset(rows)
    changes = [(n, "Running") for n in range(0, 100, 3)] + \
              [(n, "Succeeded") for n in range(0, 100, 6)] + [(7, "Failed"), (8, "Skipped")]
    for n, state in changes:
        index.move(n, rows[n][F.STATE], state)
        rows[n][F.STATE] = state
    fresh = Index()
    fresh.reset(rows)
    assert index.layout() == fresh.layout()
    assert index.members.keys() >= {"Running", "Succeeded", "Failed", "Skipped", "Ready"}
    assert {k: v for k, v in index.members.items() if v} == \
        {k: v for k, v in fresh.members.items() if v}


def test_a_filter_matches_names_tags_and_states():
    rows = {row[F.N]: row for row in with_states(fleet(20), drain__web17="Failed",
                                                   upgrade__web17="Running")}
    index = Index()
    index.reset(rows)

    def names(text: str) -> list[str]:
        return [rows[n][F.NAME] for n in index.match(Filter(text))]

    assert names("web17") == ["drain@web17", "upgrade@web17"]
    assert names("host=web17 phase=drain") == ["drain@web17"]
    assert names("HOST=WEB1?") == [f"{p}@web1{i}" for p in ("drain", "upgrade")
                                   for i in range(10)]
    assert names("failed") == ["drain@web17"]  # a state's name
    assert names("state=run*") == ["upgrade@web17"]
    assert names("name=upgrade@* running") == ["upgrade@web17"]
    assert names("nothing-like-this") == []
    assert not Filter("  ")
    index.move(0, "Ready", "Failed")  # a state filter follows the changes
    rows[0][F.STATE] = "Failed"
    assert names("failed") == ["drain@web0", "drain@web17"]


def frame(view: RunView, height: int = 40, width: int = 160) -> str:
    out = io.StringIO()
    Console(file=out, width=width, height=height, color_system=None).print(
        render(view, keys=True, height=height))
    return out.getvalue()


def view_of(rows: list[dict[str, Any]]) -> RunView:
    view = RunView(None, "trail fleet")  # type: ignore[arg-type]  # no server: rows only
    view.reset(rows)
    return view


def test_a_small_run_keeps_a_row_per_step():
    text = frame(view_of(fleet(10)))  # 21 steps
    for name in ("drain@web0", "drain@web9", "upgrade@web9", "verify"):
        assert name in text
    assert "group(s)" not in text and "21 Ready" in text


def test_a_big_run_is_grouped_and_fits_the_terminal():
    view = view_of(fleet(1500))  # 3001 steps
    for n in range(0, 700):
        view.apply(StateChanged(seq=0, time=1.0, n=n, name="", state="Running",
                                previous="Ready"))
    for n in range(0, 600):
        view.apply(StateChanged(seq=0, time=2.0, n=n, name="", state="Succeeded",
                                previous="Running"))
    view.apply(StateChanged(seq=0, time=2.0, n=17, name="", state="Paused due to failure",
                            previous="Succeeded"))
    view.apply(Prompt(n=650, name="drain@web650", message="Drain web650 now?"))
    text = frame(view, height=40)
    lines = text.splitlines()
    assert len(lines) <= 40
    attention = next(i for i, line in enumerate(lines) if "2 need you" in line)
    assert "drain@web650" in lines[attention + 1] and "? Drain web650 now?" in lines[attention + 1]
    assert "drain@web17" in lines[attention + 2] and "Paused due to failure" in lines[attention + 2]
    running = next(i for i, line in enumerate(lines) if "99 running" in line)
    assert running > attention + 2 and "… " in text and "more running" in text
    drain = next(line for line in lines if " drain " in line and "steps" in line)
    assert "1500 steps" in drain and "1 Paused due to failure" in drain and \
        "100 Running" in drain and "800 Ready" in drain and "599 Succeeded" in drain
    assert "upgrade" in text and "1500 Ready" in text
    assert "done: 599 Succeeded" in text
    assert "waiting for you" in text


def test_reaching_one_step_among_thousands():
    view = view_of(fleet(1500))
    steering = Steering(None)  # type: ignore[arg-type]
    assert steering.select("host=web17") == {"host": "web17"}
    assert steering.select("17") == {"n": 17} and steering.select("x@y") == {"name": "x@y"}
    assert view.view_command("filter web1234") == "showing the steps matching 'web1234'"
    text = frame(view)
    assert "2 step(s) match 'web1234'" in text
    assert "drain@web1234" in text and "upgrade@web1234" in text and "drain@web1235" not in text
    assert view.view_command("filter") == "filter cleared"
    assert view.view_command("expand nothing").startswith("no group 'nothing'")
    assert view.view_command("expand upgrade") == "expanded upgrade"
    text = frame(view)
    assert "▾" in text and "upgrade@web0" in text and "more in upgrade" in text
    assert view.view_command("group rack") == "grouped by rack"
    text = frame(view)
    assert "(grouped by rack)" in text and " r2 " in text and "1000 steps" in text
    assert view.view_command("clear") == "showing the whole run" and view.by == "name"
    assert view.view_command("pause 3") is None  # a call: for Steering
