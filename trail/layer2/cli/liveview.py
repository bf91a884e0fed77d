"""The live view of a run: a row per step, fed by the server's event stream.

Used by ``trail run`` (which also serves the trail) and ``trail watch`` (which attaches to
one served elsewhere). In a terminal it is a rich Live table that redraws on every event,
and the operator answers prompts and steers from it with a few keys and a small command
line; without a terminal it prints plain log lines, for CI and cron.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trail.core.states import State
from trail.errors import TrailError
from trail.layer1.calls import SPECS, CallSpec, Result, json_or_text
from trail.layer1.events import Event, Hello, Input, Output, Prompt, StateChanged, StepEvent
from trail.layer1.wire import StatusField
from trail.layer2.cli.display import STATE_STYLES, elapsed, state_text, visible
from trail.layer2.client import TrailClient
from trail.layer2.groups import BY_NAME, Filter, Index
from trail.layer2.groups import Group as GroupOfSteps
from trail.layer2.mirror import StatusMirror
from trail.layer2.stream import EventStream

# The mirror keeps the latest output line of each step besides these.
FIELDS = [StatusField.STATE, StatusField.UNREPLIED_PROMPT_MESSAGE, StatusField.STARTED_AT,
          StatusField.FINISHED_AT, StatusField.TAGS]
SMALL = 40  # a run of at most this many steps (or that fits the terminal): a row per step
CHROME = 12  # terminal lines the view needs besides the table's rows
MIN_ROWS = 12  # rows a grouped view shows, however small the terminal
DRAIN_FOR = 0.1  # seconds of events applied before the view draws again

# One end state, one exit code (README "Exit codes"):
EXIT_SUCCEEDED = 0  # every step succeeded or was skipped
EXIT_FAILED = 1  # it finished with failed steps, or --fail-fast ended it at a failure
EXIT_STOPPED = 3  # stopped (stop, Ctrl-C, q, SIGTERM) or left before it finished

CLEAN = {State.SUCCEEDED.value, State.SKIPPED.value}
FAILURES = {State.FAILED.value, State.PAUSED_ON_FAIL.value}
HELP = ("keys: [bold]a[/] answer a question · [bold]:[/] command ("
        + " ".join(spec.command_name for spec in SPECS
                   if spec.mutating and spec.result is Result.STEPS)
        + "; help says what each takes) · [bold]q[/] quit")


VIEW_HELP = (" · [bold]/[/] filter (name, tag=value, state) · [bold]:[/] group TAG, expand"
             " GROUP, collapse GROUP, clear")

parse_reply = json_or_text  # what the operator typed, as a reply


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached `trail run`: stop the trail as `stop` does, without asking."""


def stop_on_signals() -> None:
    """From now on SIGTERM and SIGHUP raise Terminated in the main thread (once: a second
    signal during the clean-up is ignored)."""

    def terminate(signum: int, frame: Any) -> None:
        for other in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(other, signal.SIG_IGN)
        raise Terminated(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, terminate)


def short_line(line: str) -> str:
    """A step's last line for a narrow column: a command's label (the row names the step)
    and an empty stderr go, so the exit code and the error show."""
    start = line.find("[Command: ")
    end = line.rfind("] -- ")
    if start != -1 and end > start:
        host = line.rfind("[Host: ", start, end)
        where = f"on {line[host + len('[Host: '):end]}: " if host != -1 else ""
        line = line[:start] + where + line[end + len("] -- "):]
    return line.replace(", STDERR (Last line): None", "").replace("STDERR (Last line): ",
                                                                  "stderr: ")


class RunView:
    """A run's status, kept current from events by a StatusMirror, and its rendering."""

    def __init__(self, client: TrailClient, title: str,
                 answers: dict[str, Any] | None = None, fail_fast: bool = False) -> None:
        self.client = client
        self.fail_fast = fail_fast
        self.failed_fast: str | None = None  # the step whose failure ended the run
        self.gone = False  # the server went away (shut down) before the run finished
        self.title = title
        self.answers = dict(answers or {})  # step name -> reply given without asking
        self.mirror = StatusMirror(FIELDS)
        self.finished = False
        self.checked = 0.0  # monotonic time the status was last read
        self.behind = 0  # the server's last event, when it was not seen here a second ago
        self.stopped = False  # the operator stopped it, or left before the end
        self.opened = time.time()
        self.notice: Text | None = None
        self.where = Filter("")  # the steps the operator asked to see (none: every step)
        self.index = Index()  # groups by the name before "@" (or a tag: `: group TAG`)
        self.expanded: set[str] = set()  # groups listed step by step

    @property
    def rows(self) -> dict[int, dict[str, Any]]:
        return self.mirror.rows

    @property
    def by(self) -> str:
        return self.index.by

    def reset(self, rows: Iterable[dict[str, Any]]) -> None:
        """Take ``rows`` (status rows) as the run's status."""
        self.mirror.reset(rows)
        self.index.reset(self.rows)

    def load(self) -> None:
        """Read the whole status (after subscribing, so nothing is missed between)."""
        self.mirror.load(self.client)
        self.index.reset(self.rows)
        info = self.client.info()
        self.finished = info["finished"]
        if info.get("started"):  # elapsed counts from the run's start, not the viewer's
            self.opened = float(info["started"])
        if self.fail_fast and self.failed_fast is None:
            for row in self.rows.values():
                if row[StatusField.STATE] in FAILURES:
                    self.failed_fast = row["Name"]
                    break

    def apply(self, event: Event) -> None:
        before = self.rows.get(event.n) if isinstance(event, StateChanged) else None
        old = before[StatusField.STATE] if before is not None else None
        row = self.mirror.apply(event)
        if old is not None and isinstance(event, StateChanged):
            self.index.move(event.n, old, event.state)
        if self.fail_fast and self.failed_fast is None and isinstance(event, StateChanged) \
                and event.state in FAILURES:
            self.failed_fast = event.name
        if row is not None and isinstance(event, Prompt) and row["Name"] in self.answers:
            self.client.send_message_to_steps(self.answers[row["Name"]], dry_run=False,
                                              n=row["n"])

    def waiting(self) -> list[dict[str, Any]]:
        return self.mirror.waiting()

    def counts(self) -> dict[str, int]:
        return self.mirror.counts()

    @property
    def over(self) -> bool:
        """The view has nothing more to wait for: the run finished, or failed fast."""
        return self.finished or self.failed_fast is not None

    def outcome(self) -> int:
        states = {row[StatusField.STATE] for row in self.rows.values()}
        if states <= CLEAN:
            return EXIT_SUCCEEDED
        if self.failed_fast is not None or (self.finished and not self.stopped):
            return EXIT_FAILED
        return EXIT_STOPPED

    def render(self, keys: bool = True, height: int | None = None) -> Group:
        """The view as one renderable: a row per step when the run fits (``height``: the
        terminal's lines), else grouped (``groups.arrange``); the counts; the keys."""
        now = time.time()
        counts = self.counts()
        budget = max((height or 0) - CHROME, MIN_ROWS)
        grouped = bool(self.where) or len(self.rows) > max(SMALL, budget)
        frame = Frame(self, now)
        table = frame.grouped(budget) if grouped else frame.table(sorted(self.rows))
        summary = Text()
        for state in State:
            count = counts.get(state.value)
            if count:
                summary.append(f"{count} {state.value}", style=STATE_STYLES[state.value])
                summary.append("  ")
        summary.append(f"· elapsed {elapsed(self.opened, None, now)}")
        waiting = len(self.mirror.asking())
        if waiting:
            summary.append(f"  · {waiting} waiting for you", style="bold yellow")
        if self.finished:
            summary.append("  · finished", style="bold")
        parts: list[Any] = [table, summary]
        if self.notice is not None:
            parts.append(self.notice)
        if keys:
            parts.append(Text.from_markup(HELP + (VIEW_HELP if grouped else ""), style="dim"))
        return Group(*parts)

    def view_command(self, line: str) -> str | None:
        """A command that changes what the view shows (``filter``, ``group``, ``expand``,
        ``collapse``, ``clear``), done; None when ``line`` is not one."""
        verb, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if verb in ("filter", "f", "/"):
            self.where = Filter(rest)
            return f"showing the steps matching {rest!r}" if rest else "filter cleared"
        if verb == "group":
            self.index.reset(self.rows, rest or BY_NAME)
            self.expanded = set()
            return f"grouped by {self.by}"
        if verb in ("expand", "collapse"):
            if not rest:
                return f"{verb} what? give a group's name"
            if rest not in self.index.groups:
                return f"no group {rest!r} (grouped by {self.by}; : group TAG groups otherwise)"
            if verb == "expand":
                self.expanded.add(rest)
            else:
                self.expanded.discard(rest)
            return f"{verb}ed {rest}"
        if verb == "clear":
            self.where, self.expanded = Filter(""), set()
            self.index.reset(self.rows, BY_NAME)
            return "showing the whole run"
        return None


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


def watch(client: TrailClient, title: str, console: Console, keys: bool | None = None,
          until_finished: bool = True, answers: dict[str, Any] | None = None,
          owner: bool = False, on_ready: Callable[[], Any] | None = None,
          fail_fast: bool = False) -> int:
    """Show the run live until it finishes (or the operator quits); return the exit code.

    ``answers`` (step name -> reply) are sent as soon as those steps ask. The ``owner`` of
    a run (``trail run``) is asked on Ctrl-C whether to stop the trail; a watcher just
    leaves. ``on_ready`` runs once the view is subscribed and shown (``trail run`` starts
    the trail there, so no change goes unseen). With ``fail_fast`` the first failure ends
    the view (exit 1); the owner then stops the trail.
    """
    interactive = keys if keys is not None else (sys.stdin.isatty() and console.is_terminal)
    view = RunView(client, title, answers, fail_fast)
    with client.subscribe() as stream:
        view.load()
        if not console.is_terminal:
            return _plain(view, stream, console, until_finished, owner, on_ready)
        if on_ready is not None:
            on_ready()
        return _live(view, stream, console, interactive, until_finished, owner)


def _drain(view: RunView, stream: EventStream, timeout: float) -> bool:
    """Apply every event that arrives within ``timeout``; True if any did.

    A view that fell behind lost events (ZeroMQ drops them for a lagging reader), perhaps
    the last ones: then the status is read again, so the view never waits for an end it
    was not told of.
    """
    missed = stream.missed
    event = stream.next(timeout)
    changed = False
    # A busy run sends events faster than they come out: after a frame's worth of them
    # the view draws and reads keys, then takes the rest.
    until = time.monotonic() + DRAIN_FOR
    while event is not None:
        if not isinstance(event, Hello):
            view.apply(event)
            changed = True
        if time.monotonic() > until:
            break
        event = stream.next(0)
    if changed or stream.missed > missed or time.monotonic() - view.checked > 1.0:
        view.checked = time.monotonic()
        try:
            if stream.missed > missed:
                view.load()  # the rows of what was missed
            info = view.client.info()
            view.finished = info["finished"]
            _caught_up(view, stream, changed, info.get("published", 0))
        except TrailError:
            view.gone = True
    return changed


def _caught_up(view: RunView, stream: EventStream, changed: bool, published: int) -> None:
    """The last events sent may be the ones lost, and then no later event tells of the
    gap: when the server has sent more than arrived, and a second later still nothing
    came, the view reads the status again."""
    behind = not changed and stream.last_seq is not None and published > stream.last_seq
    if behind and view.behind == published:
        stream.settle(published)
        view.load()
        published = 0
    view.behind = published if behind else 0


def _live(view: RunView, stream: EventStream, console: Console, keys: bool,
          until_finished: bool, owner: bool) -> int:
    steering = Steering(view.client)
    fd = sys.stdin.fileno() if keys else -1
    try:
        _live_loop(view, stream, console, keys, until_finished, owner, steering, fd)
    except KeyboardInterrupt:  # without keys (no terminal input to ask on), or a signal
        _on_ctrl_c(view, owner, lambda question: "y")
    _fail_fast(view, console, owner)
    _settle(view)
    console.print(view.render(keys=False, height=console.height))
    return view.outcome()


def _fail_fast(view: RunView, console: Console, owner: bool) -> None:
    """A failure under --fail-fast: say so; the owner stops the trail (exit 1)."""
    if view.failed_fast is None or view.finished:
        return
    console.print(f"--fail-fast: step {view.failed_fast} failed; stopping the trail",
                  markup=False, highlight=False)
    if owner:
        with contextlib.suppress(TrailError):
            view.client.stop(dry_run=False)


def _on_ctrl_c(view: RunView, owner: bool, ask: Callable[[str], str]) -> bool:
    """Ctrl-C: the owner is asked whether to stop the trail; a watcher leaves. True: leave."""
    if view.finished:
        return True
    if not owner:
        view.stopped = True
        return True
    if ask("Stop the trail (interrupt running steps, block the rest)? [y/N] ")[:1] in ("y", "Y"):
        with contextlib.suppress(TrailError):
            view.client.stop(dry_run=False)
        view.stopped = True
        return True
    return False


def _live_loop(view: RunView, stream: EventStream, console: Console, keys: bool,
               until_finished: bool, owner: bool, steering: Steering, fd: int) -> None:
    with contextlib.ExitStack() as stack:
        if keys:
            stack.enter_context(cbreak(fd))
        # Transient: while the operator types an answer the table steps aside, and comes
        # back after; the final table is printed once, below.
        live = stack.enter_context(Live(view.render(keys, console.height), console=console,
                                        refresh_per_second=4, transient=True))
        while not (until_finished and view.over) and not view.gone:
            if not os.path.exists(view.client.socket_file):
                view.gone = True
                break
            ready: list[int] = []
            try:
                if keys:
                    ready, _, _ = select.select([fd], [], [], 0)
                _drain(view, stream, 0.1)
            except KeyboardInterrupt as interrupt:
                if not keys or isinstance(interrupt, Terminated):
                    raise
                if _on_ctrl_c(view, owner, lambda q: _ask(live, console, fd, q)):
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
            live.update(view.render(keys, console.height))


def _settle(view: RunView) -> None:
    """Read the final status: events still in flight must not decide the outcome."""
    with contextlib.suppress(TrailError):
        finished = view.finished
        view.load()
        view.finished = view.finished or finished


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


def _plain(view: RunView, stream: EventStream, console: Console, until_finished: bool,
           owner: bool, on_ready: Callable[[], Any] | None) -> int:
    try:
        _plain_loop(view, stream, console, until_finished, on_ready)
    except KeyboardInterrupt:  # no terminal to ask on: the owner stops the trail
        _on_ctrl_c(view, owner, lambda question: "y")
    _fail_fast(view, console, owner)
    _settle(view)
    counts = ", ".join(f"{c} {s}" for s, c in view.counts().items())
    state = ("failed fast" if view.failed_fast is not None and not view.finished
             else "stopped" if view.stopped else "finished" if view.finished
             else "the server shut down before the run finished" if view.gone else "left")
    console.print(f"{state}: {counts}", markup=False)
    return view.outcome()


def _plain_loop(view: RunView, stream: EventStream, console: Console,
                until_finished: bool, on_ready: Callable[[], Any] | None) -> None:
    def line(n: int, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        console.print(visible(f"{stamp}  {n:>3} {view.rows[n]['Name']:<24} {text}"),
                      markup=False, highlight=False, soft_wrap=True)

    if len(view.rows) <= SMALL:
        for n, row in sorted(view.rows.items()):
            line(n, row[StatusField.STATE])
    else:  # a fleet's thousands of "Ready" say less than one line of counts
        counts = ", ".join(f"{c} {s}" for s, c in view.counts().items())
        console.print(f"{time.strftime('%H:%M:%S')}  {len(view.rows)} steps: {counts} (a line "
                      f"for each change from here on)", markup=False, highlight=False,
                      soft_wrap=True)
    if on_ready is not None:
        on_ready()
    told = ""  # what the run waits on, as last said

    def tell() -> None:
        nonlocal told
        with contextlib.suppress(TrailError):
            info = view.client.info()
            view.finished = info["finished"]
            said = _waiting_note(view, info) if info.get("idle") else ""
            if said and said != told and not view.over:
                console.print(said, markup=False, highlight=False, soft_wrap=True)
            told = said

    if on_ready is None:  # a run taken up, or not started: say what it waits on
        tell()
    missed = 0  # events this view lost by falling behind, as last said

    def own_up() -> None:
        nonlocal missed
        if stream.missed > missed:
            where = f"--socket {view.client.socket_file}"
            with contextlib.suppress(TrailError):
                run = view.client.info().get("run")
                where = f"--run {run}" if run else where
            console.print(f"[trail] this view fell behind and missed {stream.missed - missed} "
                          f"event(s); every line a step said: trail logs STEP {where}",
                          markup=False, highlight=False, soft_wrap=True)
            missed = stream.missed
            with contextlib.suppress(TrailError):
                view.load()  # the rows (and the end) of what was missed

    while not (until_finished and view.over):
        if not os.path.exists(view.client.socket_file):
            view.gone = True
            break
        event = stream.next(1.0)
        if event is None:  # a quiet second: the end may be among events this view missed
            tell()
            continue
        own_up()
        _print_event(view, event, line)
        if isinstance(event, StateChanged):
            tell()
    # Events sent before the server said "finished" may still be on their way: show them,
    # up to the last the server has published (not a quiet moment's wait at every end).
    published = None
    with contextlib.suppress(TrailError):
        published = view.client.info().get("published", 0)
    while (published is None or (stream.last_seq or 0) < published) \
            and (event := stream.next(0.2)) is not None:
        own_up()
        _print_event(view, event, line)
    if published is not None:
        stream.settle(published)
    own_up()


def _waiting_note(view: RunView, info: dict[str, Any]) -> str:
    """One line: what the idle run waits on (questions and failures have their own)."""
    waiting = info.get("waiting_for") or {}
    counts = info.get("waiting_counts") or {}
    socket = view.client.socket_file
    hints = {State.BLOCKED.value: "unblock", State.PAUSED.value: "resume",
             State.INTERRUPTED.value: "resume", State.READY.value: "start"}
    parts = []
    for what, steps in waiting.items():
        if what not in hints:
            continue
        count = counts.get(what, len(steps))
        names = ", ".join(f"{n} {name}" for n, name in steps[:5])
        more = f" and {count - 5} more" if count > 5 else ""
        parts.append(f"{count} {what} ({names}{more}): trail {hints[what]} "
                     f"--socket {socket} --yes")
    if not parts:
        return ""
    return "waiting for you, the run stays open: " + "; ".join(parts)


def _print_event(view: RunView, event: Event, line: Callable[[int, str], None]) -> None:
    """Apply an event to the view and print its line (a greeting or a shutdown has none)."""
    view.apply(event)
    if not isinstance(event, StepEvent) or event.n not in view.rows:
        return
    n = event.n
    if isinstance(event, StateChanged):
        extra = ""
        if event.has_return_value and event.return_value is not None and \
                event.state != State.SUCCEEDED.value:
            extra = f"  ({event.return_value})"
        line(n, event.state + extra)
    elif isinstance(event, Output):
        line(n, f"| {event.message}")
    elif isinstance(event, Prompt):
        line(n, f"? {event.message}  (answer: trail send --socket "
                f"{view.client.socket_file} VALUE n={n} --yes)")
    if isinstance(event, StateChanged) and event.state == State.PAUSED_ON_FAIL.value \
            and not view.fail_fast:
        socket = view.client.socket_file
        line(n, f"! waits for you: rerun it: trail rerun --socket {socket} n={n} --yes"
                f"  ·  skip it: trail skip --socket {socket} n={n} --yes")
    elif isinstance(event, Input):
        line(n, f"> {event.message!r}")


__all__ = ["Frame", "RunView", "Steering", "Terminated", "parse_reply", "stop_on_signals", "watch"]
