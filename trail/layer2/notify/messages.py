"""What a notice says: the trail, run, host and step, what happened, and the command to act."""

from __future__ import annotations

import shlex
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from trail.layer1 import values
from trail.layer2.notify.destinations import (
    ESCALATED,
    FAILED,
    FINISHED,
    OVERDUE,
    SUCCEEDED,
    WAITING,
)

OUTPUT_LINES = 10  # the last lines of a failed step's output in its notice


@dataclass(frozen=True)
class RunFacts:
    """What every notice names: the trail, its run, where it runs, how to reach it."""

    trail: str
    run_id: int | None
    socket_file: str
    host: str = socket.gethostname()
    web_url: str | None = None  # TRAIL_WEB_URL: the base of `trail web`'s pages

    def command(self, call: str, n: int | None = None, *args: str) -> str:
        words = ["trail", call, "--socket", self.socket_file, *args]
        if n is not None:
            words.append(f"n={n}")
        text = " ".join(shlex.quote(word) for word in words)
        return text + (" --yes" if call not in ("status", "watch", "history") else "")

    def link(self, n: int | None = None) -> str | None:
        """The run's page (and the step's place on it) when TRAIL_WEB_URL is set."""
        if not self.web_url or self.run_id is None:
            return None
        parts = urlsplit(self.web_url)
        path = parts.path.rstrip("/") + f"/runs/{self.run_id}"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query,
                           f"step-{n}" if n is not None else ""))

    @property
    def label(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "a run without journal"
        return f"{self.trail} ({run} on {self.host})"


@dataclass(frozen=True)
class Notice:
    """One thing to tell: its ``kind``, the ``key`` that makes it sent once per run, and
    the text. ``n`` is the step it is about (None for the whole run)."""

    kind: str
    key: str
    title: str
    body: str
    n: int | None = None
    failure: bool = False  # shown as a failure (red) where the service has types


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else values.dumps(value)


def _lines(facts: RunFacts, n: int | None, what: list[str], act: list[tuple[str, str]]
           ) -> str:
    lines = [f"Trail: {facts.label}"]
    lines += what
    if act:
        lines += ["", "To act:"]
        lines += [f"  {how}:\n    {command}" for how, command in act]
    link = facts.link(n)
    if link:
        lines += ["", f"Page: {link}"]
    return "\n".join(lines)


def failed(facts: RunFacts, row: Mapping[str, Any], key: str) -> Notice:
    n, name, state = row["n"], row["Name"], row["State"]
    paused = state != "Failed"
    output = [str(line) for line in (row.get("Output messages") or [])][-OUTPUT_LINES:]
    what = [f"Step: {n} {name}",
            f"State: {state}" + (" (it waits for a person)" if paused else ""),
            f"Error: {_shown(row.get('Return value'))}"]
    if output:
        what += ["Last output:"] + [f"  {line}" for line in output]
    act = ([("run it again", facts.command("resume", n)),
            ("or skip it", facts.command("skip", n))] if paused else
           [("run it again", facts.command("rerun", n))])
    act.append(("see it", facts.command("status", n)))
    verb = "paused on failure" if paused else "failed"
    return Notice(FAILED, key, f"[trail {facts.trail}] step {n} {name} {verb}",
                  _lines(facts, n, what, act), n, failure=True)


def waiting(facts: RunFacts, row: Mapping[str, Any], question: Any, key: str) -> Notice:
    n, name = row["n"], row["Name"]
    what = [f"Step: {n} {name}", f"Asks: {_shown(question)}"]
    act = [("answer it", facts.command("send", n, "ANSWER")),
           ("mark an Instruction done", facts.command("send", n, "true"))]
    return Notice(WAITING, key, f"[trail {facts.trail}] step {n} {name} waits for you",
                  _lines(facts, n, what, act), n)


def overdue(facts: RunFacts, row: Mapping[str, Any], seconds: float, key: str) -> Notice:
    n, name = row["n"], row["Name"]
    what = [f"Step: {n} {name}", f"Running for more than {seconds:g} s (its warn_after)"]
    last = [str(line) for line in (row.get("Output messages") or [])][-3:]
    if last:
        what += ["Last output:"] + [f"  {line}" for line in last]
    act = [("see it", facts.command("status", n)),
           ("stop it", facts.command("interrupt", n))]
    return Notice(OVERDUE, key, f"[trail {facts.trail}] step {n} {name} runs long",
                  _lines(facts, n, what, act), n)


def escalated(facts: RunFacts, first: Notice, seconds: float, key: str) -> Notice:
    body = (f"Nobody has acted for more than {seconds:g} s (its escalate_after).\n\n"
            + first.body)
    return Notice(ESCALATED, key, first.title.replace("[trail ", "[trail ESCALATED ", 1), body,
                  first.n, failure=True)


def finished(facts: RunFacts, counts: Mapping[str, int], failure: bool, key: str) -> Notice:
    shown = ", ".join(f"{count} {state}" for state, count in counts.items())
    what = [f"Finished: {'with failures' if failure else 'every step succeeded or skipped'}",
            f"Steps: {shown}"]
    act = [("see what happened", "trail history" + (f" {facts.run_id}" if facts.run_id
                                                      is not None else ""))]
    if failure:
        act.insert(0, ("see the steps", facts.command("status")))
    word = "finished with failures" if failure else "succeeded"
    return Notice(FINISHED if failure else SUCCEEDED, key,
                  f"[trail {facts.trail}] run {word}", _lines(facts, None, what, act),
                  failure=failure)


def sample(facts: RunFacts) -> Notice:
    """What ``trail notify-test`` sends."""
    return Notice("test", "test", f"[trail {facts.trail}] a test notice",
                  _lines(facts, None, ["This is a test: the destination works."], []))
