"""How trail shows a run to a person with rich: colours per state, status tables, results.

The text that needs no rich (control characters shown, durations, a stop's summary) is in
``plain``, which ``trail run --plain`` uses alone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from trail.core.states import State
from trail.layer1.calls import CallSpec, Result
from trail.layer2.cli.plain import clock, elapsed, visible

STATE_STYLES: dict[str, str] = {
    State.READY.value: "dim",
    State.WAITING.value: "cyan",
    State.RUNNING.value: "bold blue",
    State.SUCCEEDED.value: "green",
    State.FAILED.value: "bold red",
    State.SKIPPED.value: "dim green",
    State.BLOCKED.value: "red",
    State.PAUSED.value: "yellow",
    State.INTERRUPTED.value: "bold magenta",
    State.PAUSED_ON_FAIL.value: "bold red reverse",
    State.TO_SKIP.value: "dim cyan",
    State.TO_BLOCK.value: "dim red",
    State.TO_PAUSE.value: "dim yellow",
}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def cell(value: Any) -> str:
    """A status value as one readable cell (control characters shown, not obeyed)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return visible("\n".join(value))
    return visible(json.dumps(value, default=str))


def status_table(rows: Iterable[dict[str, Any]], title: str | None = None) -> Table:
    """A table of status rows: one column per field, the state coloured."""
    rows = list(rows)
    table = Table(title=title, show_lines=False, expand=False)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column == "n" else "left")
    for row in rows:
        table.add_row(*(
            state_text(row[c]) if c == "State" and c in row else Text(cell(row.get(c)))
            for c in columns
        ))
    return table


def affected_text(call: str, steps: list[dict[str, Any]], dry_run: bool,
                  do_it: str = "(dry_run=False)") -> Text:
    """What a mutating call did, or would do in a dry run, as a short text; ``do_it`` is
    how the person makes it real (`` --yes`` on the command line)."""
    text = Text()
    if dry_run:
        text.append("DRY RUN ", style="bold yellow reverse")
        text.append(f"{call} would affect {len(steps)} step(s)")
        if steps:
            how = do_it.strip()
            text.append(f" (add {how} to apply)" if how.startswith("-")
                        else f" (call it again with {how.strip('()')} to apply)")
    else:
        text.append(f"{call} affected {len(steps)} step(s)", style="bold")
    for step in steps:
        text.append(f"\n  # {step['n']} - {step['name']}")
    return text


def call_result(spec: CallSpec, result: Any, dry_run: bool, label: str, do_it: str,
                sentences: bool = False) -> RenderableType:
    """A call's result for a person, as its kind of result is shown (``Result``).

    ``label`` names the call as the person typed it (``pause-branch``, ``pause_branch``),
    ``do_it`` is how they would make a dry run real (`` --yes``, ``(dry_run=False)``);
    ``sentences`` ends the plain texts as sentences (the REPL's style).
    """
    def said(text: str) -> Text:
        return Text(text[:1].upper() + text[1:] + "." if sentences else text)

    if spec.result is Result.STEPS:
        return affected_text(label, result, dry_run, do_it)
    if spec.result is Result.DONE:
        if result:
            return said(spec.done)
        return Text.assemble(("DRY RUN ", "bold yellow reverse"),
                             said(f"{label}{do_it} {spec.would}"))
    if spec.result is Result.ROWS:
        return status_table(result) if result else said(spec.nothing)
    from rich.pretty import Pretty  # only here: it imports attrs, and trail run needs none

    return Pretty(result)


def runs_table(runs: list[dict[str, Any]]) -> Table:
    """Past runs: when, how long, how they ended, and their steps' states."""
    table = Table(title="runs in the journal")
    for column in ("run", "trail", "started", "duration", "ended as", "steps"):
        table.add_column(column, justify="right" if column == "run" else "left")
    for run in runs:
        live = run.get("live")  # an open run whose server answers (history asks)
        end = run["ended"] or (time.time() if live else run.get("last_change"))
        counts = Text()
        for state, count in sorted(run.get("counts", {}).items()):
            counts.append(f"{count} {state} ", style=STATE_STYLES.get(state, ""))
        outcome = run["outcome"] or ("" if run["ended"] else "running" if live
                                     else "server died (trail run takes it up)"
                                     if live is False else "open (or its server died)")
        table.add_row(str(run["id"]), run["name"], clock(run["started"]),
                      elapsed(run["started"], end), outcome, counts)
    return table


def timeline_table(run: dict[str, Any], timeline: list[dict[str, Any]]) -> Table:
    """One run in order: when, which step, what happened (a state change, or what the step
    said, asked, or was told), and why or what."""
    table = Table(title=f"run {run['id']} of {run['name']}, started {clock(run['started'])}")
    for column in ("time", "n", "step", "what", "detail"):
        table.add_column(column, justify="right" if column == "n" else "left")
    for entry in timeline:
        if entry["kind"] == "state":
            what = Text.assemble(state_text(entry["old"]), " -> ", state_text(entry["new"]))
            detail = Text(visible(entry["cause"]))
        else:
            what = Text(TIMELINE_KINDS.get(entry["kind"], entry["kind"]), style="dim")
            said = str(entry["message"])
            if entry.get("cause"):  # an answer: who gave it
                said += f" ({entry['cause']})"
            detail = Text(visible(said))
        table.add_row(clock(entry["time"]), str(entry["n"]), visible(str(entry["name"])), what,
                      detail)
    return table


TIMELINE_KINDS = {"output": "said", "prompt": "asked", "input": "was told",
                  "notice": "notified"}
