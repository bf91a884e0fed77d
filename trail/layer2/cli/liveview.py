"""The live view of a run in a terminal: a rich Live table that redraws on every event,
a row per step (or grouped, for a fleet), from which the operator answers prompts and
steers with a few keys and a small command line. ``follow.watch`` hands a run to it when
there is a terminal; the status it shows is ``follow.RunView``'s.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trail.core.states import State
from trail.errors import TrailError
from trail.layer1.calls import SPECS, CallSpec, Result
from trail.layer1.wire import StatusField
from trail.layer2.cli.display import STATE_STYLES, elapsed, state_text
from trail.layer2.cli.follow import (
    SMALL,
    RunView,
    Terminated,
    drain,
    end_fail_fast,
    on_ctrl_c,
    settle,
    short_line,
)
from trail.layer2.client import TrailClient
from trail.layer2.groups import BY_NAME
from trail.layer2.groups import Group as GroupOfSteps
from trail.layer2.stream import EventStream

CHROME = 12  # terminal lines the view needs besides the table's rows
MIN_ROWS = 12  # rows a grouped view shows, however small the terminal

HELP = ("keys: [bold]a[/] answer a question · [bold]:[/] command ("
        + " ".join(spec.command_name for spec in SPECS
                   if spec.mutating and spec.result is Result.STEPS)
        + "; help says what each takes) · [bold]q[/] quit")


VIEW_HELP = (" · [bold]/[/] filter (name, tag=value, state) · [bold]:[/] group TAG, expand"
             " GROUP, collapse GROUP, clear")


def render(view: RunView, keys: bool = True, height: int | None = None) -> Group:
    """A RunView as one renderable: a row per step when the run fits (``height``: the
    terminal's lines), else grouped (``groups.arrange``); the counts; the keys."""
    now = time.time()
    counts = view.counts()
    budget = max((height or 0) - CHROME, MIN_ROWS)
    grouped = bool(view.where) or len(view.rows) > max(SMALL, budget)
    frame = Frame(view, now)
    table = frame.grouped(budget) if grouped else frame.table(sorted(view.rows))
    summary = Text()
    for state in State:
        count = counts.get(state.value)
        if count:
            summary.append(f"{count} {state.value}", style=STATE_STYLES[state.value])
            summary.append("  ")
    summary.append(f"· elapsed {elapsed(view.opened, None, now)}")
    waiting = len(view.mirror.asking())
    if waiting:
        summary.append(f"  · {waiting} waiting for you", style="bold yellow")
    if view.finished:
        summary.append("  · finished", style="bold")
    parts: list[Any] = [table, summary]
    if view.notice is not None:
        parts.append(view.notice)
    if keys:
        parts.append(Text.from_markup(HELP + (VIEW_HELP if grouped else ""), style="dim"))
    return Group(*parts)


class Frame:
    """One frame of a RunView: a row per step (a small run, or the steps a filter found),
    or grouped (``groups.Index.layout``) within the rows the terminal has."""

    def __init__(self, view: RunView, now: float) -> None:
        self.view = view
        self.now = now

    def table(self, shown: list[int]) -> Table:
        """A table with a row per step in ``shown`` (today's view of a small run)."""
        table = self._empty_table(shown)
        for n in shown:
            self._step_row(table, n)
        return table

    def _empty_table(self, shown: Iterable[int]) -> Table:
        title = Text(self.view.title, style="bold")
        if self.view.by != BY_NAME:
            title.append(f"  (grouped by {self.view.by})", style="dim")
        table = Table(expand=True, title=title, title_justify="left")
        table.add_column("n", justify="right", width=max(3, len(str(max(self.view.rows,
                                                                             default=0)))))
        widest = max((len(str(self.view.rows[n]["Name"])) for n in shown), default=4)
        table.add_column("step", no_wrap=True, min_width=min(widest, 40), overflow="ellipsis")
        table.add_column("state", width=21, no_wrap=True, overflow="ellipsis")
        table.add_column("time", justify="right", width=10, no_wrap=True)
        table.add_column("last output / question", ratio=1, overflow="ellipsis", no_wrap=True)
        return table

    def _step_row(self, table: Table, n: int) -> None:
        row = self.view.rows[n]
        question = row[StatusField.UNREPLIED_PROMPT_MESSAGE]
        detail = (Text(f"? {question}", style="bold yellow") if question is not None
                  else Text(short_line(self.view.mirror.last(n))))
        table.add_row(str(n), row["Name"], state_text(row[StatusField.STATE]),
                      elapsed(row.get(StatusField.STARTED_AT),
                              row.get(StatusField.FINISHED_AT), self.now), detail)

    def grouped(self, budget: int) -> Table:
        """What needs the operator, what runs, then a line per group, within ``budget``
        rows; or the steps the filter matches."""
        layout = self.view.index.layout(self.view.mirror.asking(), self.view.where)
        plan: list[tuple[str, Any]] = []  # ("step", n) | ("head", Text) | ("group", Group)
        left = budget
        if layout.matched is not None:
            shown = layout.matched[:max(left - 2, 1)]
            plan.append(("head", Text(f"{len(layout.matched)} step(s) match "
                                      f"{self.view.where.text!r}", style="bold")))
            plan += [("step", n) for n in shown]
            if len(layout.matched) > len(shown):
                plan.append(("head", Text(f"… {len(layout.matched) - len(shown)} more match "
                                          "(narrow the filter)", style="dim")))
        else:
            # The group lines keep their room (a third of the rows at most); what needs
            # the operator gets half of the rest when steps are running too.
            left -= min(len(layout.groups), budget // 3) + 2 if layout.groups else 0
            for steps, what, style, share in (
                    (layout.attention, "need you", "bold red", 2 if layout.running else 1),
                    (layout.running, "running", "bold blue", 1)):
                if not steps:
                    continue
                cap = max((left - 2) // share, 3)
                plan.append(("head", Text(f"{len(steps)} {what}", style=style)))
                plan += [("step", n) for n in steps[:cap]]
                if len(steps) > cap:
                    plan.append(("head", Text(f"… {len(steps) - cap} more {what} (: filter "
                                              "to see them)", style="dim")))
                left -= min(len(steps), cap) + 2
            listed = {item for kind, item in plan if kind == "step"}
            left += min(len(layout.groups), budget // 3) + 2 if layout.groups else 0
            if layout.groups:
                plan.append(("head", Text(f"{len(layout.groups)} group(s) by {self.view.by}, "
                                          "not done", style="bold")))
                left -= 1
            for index, group in enumerate(layout.groups):
                if left <= 1 and index < len(layout.groups) - 1:
                    plan.append(("head", Text(f"… {len(layout.groups) - index} more groups "
                                              "(: filter, or : group TAG)", style="dim")))
                    break
                if len(group.steps) == 1:  # a step of its own: its row (once)
                    if group.steps[0] not in listed:
                        plan.append(("step", group.steps[0]))
                        left -= 1
                    continue
                plan.append(("group", group))
                left -= 1
                if group.key in self.view.expanded:
                    cap = max(left - 1, 3)
                    plan += [("step", n) for n in group.steps[:cap]]
                    if len(group.steps) > cap:
                        plan.append(("head", Text(f"… {len(group.steps) - cap} more in "
                                                  f"{group.key} (: filter)", style="dim")))
                    left -= min(len(group.steps), cap) + 1
        table = self._empty_table([item for kind, item in plan if kind == "step"])
        for kind, item in plan:
            if kind == "step":
                self._step_row(table, item)
            elif kind == "head":
                table.add_row("", item, "", "", "")
            else:
                self._group_row(table, item)
        if layout.matched is None and (layout.done or layout.done_groups):
            done = Text("done: ", style="green")
            done.append("  ".join(f"{count} {state}" for state, count in layout.done.items()),
                        style="green")
            if layout.done_groups:
                names = ", ".join(g.key for g in layout.done_groups[:5])
                more = f" and {len(layout.done_groups) - 5} more" \
                    if len(layout.done_groups) > 5 else ""
                done.append(f"  · every step done in {names}{more}", style="dim green")
            table.caption, table.caption_justify = done, "left"
        return table

    def _group_row(self, table: Table, group: GroupOfSteps) -> None:
        counts = Text()
        for state, count in group.ordered_counts():
            counts.append(f"{count} {state}", style=STATE_STYLES.get(state, ""))
            counts.append("  ")
        mark = "▾" if group.key in self.view.expanded else "▸"
        table.add_row(mark, Text(group.key, style="bold"),
                      Text(f"{len(group.steps)} steps", style="bold"), "", counts)


@contextlib.contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys arrive one by one, unechoed; the terminal is restored on the way out."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Steering:
    """What the operator can do from the view: each call acts at once (no dry run).

    The verbs are the table's calls that change steps, by their name or their command's
    (``pause_branch``, ``pause-branch``, ``next``, ``send``; ``answer`` and ``a`` too):
    those that select steps take a step's n or name (start and stop may go without, for
    every step), then the call's own argument: ``next [COUNT]``, ``answer N MESSAGE``.
    """

    ALIASES = {"a": "send_message_to_steps", "answer": "send_message_to_steps"}

    def __init__(self, client: TrailClient, specs: Iterable[CallSpec] = SPECS) -> None:
        self.client = client
        self.specs = [spec for spec in specs if spec.mutating and spec.result is Result.STEPS]
        self.verbs = {**{spec.name: spec for spec in self.specs},
                      **{spec.command_name.replace("-", "_"): spec for spec in self.specs}}
        self.verbs.update({alias: self.verbs[name] for alias, name in self.ALIASES.items()
                           if name in self.verbs})

    def command(self, line: str) -> str:
        """Run one command line; return what to tell the operator."""
        words = line.strip().split(maxsplit=1)
        if not words:
            return ""
        verb, rest = words[0].replace("-", "_"), (words[1] if len(words) > 1 else "")
        if verb in ("help", "h", "?"):
            return self.help()
        spec = self.verbs.get(verb)
        if spec is None:
            return f"unknown command {verb!r} (try help)"
        args: dict[str, Any] = {"dry_run": False}
        if spec.selects:
            target, _, rest = rest.strip().partition(" ")
            if not target and not spec.whole_trail:
                return f"{verb} what? give a step's n or name"
            args["tags"] = self.select(target) if target else {}
        for argument in spec.arguments:  # the rest of the line is the call's own argument
            if rest.strip():
                args[argument.name] = argument.from_text(rest.strip())
            elif argument.required:
                return f"{verb} needs {argument.cli}"
            rest = ""
        done = self.client.call(spec.name, **args)
        return f"{verb}: " + (", ".join(f"{s['n']} {s['name']}" for s in done) or
                              "no step in a state that allows it")

    def help(self) -> str:
        """Every verb and what it takes, from the table."""
        def usage(spec: CallSpec) -> str:
            target = ("[N-or-name]" if spec.whole_trail else "N-or-name") if spec.selects else ""
            own = " ".join(a.cli if a.required else f"[{a.cli}]" for a in spec.arguments)
            return " ".join(part for part in (spec.command_name, target, own) if part)

        return " · ".join(usage(spec) for spec in self.specs)

    def select(self, word: str) -> dict[str, Any]:
        """A step's n or name, or ``key=value`` for every step with that tag
        (``host=web17``, ``phase=drain``)."""
        word = word.strip()
        key, equals, value = word.partition("=")
        if equals and key:
            return {key: int(value) if key == "n" and value.isdigit() else value}
        return {"n": int(word)} if word.isdigit() else {"name": word}


def live(view: RunView, stream: EventStream, console: Console, keys: bool,
          until_finished: bool, owner: bool) -> int:
    steering = Steering(view.client)
    fd = sys.stdin.fileno() if keys else -1
    try:
        _live_loop(view, stream, console, keys, until_finished, owner, steering, fd)
    except KeyboardInterrupt:  # without keys (no terminal input to ask on), or a signal
        on_ctrl_c(view, owner, lambda question: "y")
    end_fail_fast(view, console, owner)
    settle(view)
    console.print(render(view, keys=False, height=console.height))
    return view.outcome()


def _live_loop(view: RunView, stream: EventStream, console: Console, keys: bool,
               until_finished: bool, owner: bool, steering: Steering, fd: int) -> None:
    with contextlib.ExitStack() as stack:
        if keys:
            stack.enter_context(cbreak(fd))
        # Transient: while the operator types an answer the table steps aside, and comes
        # back after; the final table is printed once, below.
        live = stack.enter_context(Live(render(view, keys, console.height), console=console,
                                        refresh_per_second=4, transient=True))
        while not (until_finished and view.over) and not view.gone:
            if not os.path.exists(view.client.socket_file):
                view.gone = True
                break
            ready: list[int] = []
            try:
                if keys:
                    ready, _, _ = select.select([fd], [], [], 0)
                drain(view, stream, 0.1)
            except KeyboardInterrupt as interrupt:
                if not keys or isinstance(interrupt, Terminated):
                    raise
                if on_ctrl_c(view, owner, lambda q: _ask(live, console, fd, q)):
                    break
            if ready:
                key = os.read(fd, 1).decode(errors="replace")
                if key == "q":
                    question = ("Quit: stop the trail (running steps interrupted, the rest "
                                "blocked; trail run --resume takes it up) and exit? [y/N] "
                                if owner else "Leave the view? The trail goes on. [y/N] ")
                    if view.finished or _ask(live, console, fd, question)[:1] in ("y", "Y"):
                        if owner and not view.finished:
                            with contextlib.suppress(TrailError):
                                view.client.stop(dry_run=False)
                        view.stopped = not view.finished
                        break
                elif key == "a":
                    view.notice = _answer(view, steering, live, console, fd)
                elif key == ":":
                    line = _ask(live, console, fd, "trail> ")
                    view.notice = _say(steering, line, view)
                elif key == "/":
                    line = _ask(live, console, fd, "filter> ")
                    view.notice = _say(steering, "filter " + line, view)
            live.update(render(view, keys, console.height))


def _say(steering: Steering, line: str, view: RunView | None = None) -> Text:
    try:
        said = view.view_command(line) if view is not None else None
        if said is not None:
            return Text(said, style="bold")
        if view is not None and line.strip() in ("help", "h", "?"):
            return Text(steering.help() + " · filter TEXT · group TAG · expand GROUP · "
                        "collapse GROUP · clear", style="bold")
        return Text(steering.command(line), style="bold")
    except (TrailError, ValueError) as exc:
        return Text(f"error: {exc}", style="bold red")


def _answer(view: RunView, steering: Steering, live: Live, console: Console, fd: int) -> Text:
    waiting = view.waiting()
    if not waiting:
        return Text("no step is waiting for an answer", style="yellow")
    row = waiting[0]
    if len(waiting) > 1:
        names = ", ".join(f"{r['n']} {r['Name']}" for r in waiting[:10])
        more = f" and {len(waiting) - 10} more" if len(waiting) > 10 else ""
        choice = _ask(live, console, fd, f"Which step? ({names}{more}) n: ").strip()
        matches = [r for r in waiting if str(r["n"]) == choice]
        if not matches:
            return Text(f"no step {choice!r} is waiting", style="yellow")
        row = matches[0]
    question = row[StatusField.UNREPLIED_PROMPT_MESSAGE]
    text = _ask(live, console, fd, f"{row['Name']}: {question}\n> ")
    return _say(steering, f"answer {row['n']} {text}")  # never a view command


def _ask(live: Live, console: Console, fd: int, prompt: str) -> str:
    """Pause the live display and read one line in the normal terminal mode."""
    live.stop()
    saved = termios.tcgetattr(fd)
    try:
        cooked = termios.tcgetattr(fd)
        cooked[3] |= termios.ICANON | termios.ECHO
        termios.tcsetattr(fd, termios.TCSADRAIN, cooked)
        try:
            return console.input(prompt)
        except EOFError:
            return ""
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        live.start()


__all__ = ["Frame", "Steering", "live", "render"]
