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
from trail.layer2.mirror import StatusMirror
from trail.layer2.stream import EventStream

# The mirror keeps the latest output line of each step besides these.
FIELDS = [StatusField.STATE, StatusField.UNREPLIED_PROMPT_MESSAGE, StatusField.STARTED_AT,
          StatusField.FINISHED_AT]

EXIT_SUCCEEDED = 0  # every step succeeded or was skipped
EXIT_FAILED = 1  # the trail finished with failed or blocked steps
EXIT_STOPPED = 3  # the operator stopped or left it before it finished

CLEAN = {State.SUCCEEDED.value, State.SKIPPED.value}
HELP = ("keys: [bold]a[/] answer a question · [bold]:[/] command ("
        + " ".join(spec.command_name for spec in SPECS
                   if spec.mutating and spec.result is Result.STEPS)
        + "; help says what each takes) · [bold]q[/] quit")


parse_reply = json_or_text  # what the operator typed, as a reply


class RunView:
    """A run's status, kept current from events by a StatusMirror, and its rendering."""

    def __init__(self, client: TrailClient, title: str,
                 answers: dict[str, Any] | None = None) -> None:
        self.client = client
        self.title = title
        self.answers = dict(answers or {})  # step name -> reply given without asking
        self.mirror = StatusMirror(FIELDS)
        self.finished = False
        self.stopped = False  # the operator stopped it, or left before the end
        self.opened = time.time()
        self.notice: Text | None = None

    @property
    def rows(self) -> dict[int, dict[str, Any]]:
        return self.mirror.rows

    def load(self) -> None:
        """Read the whole status (after subscribing, so nothing is missed between)."""
        self.mirror.load(self.client)
        self.finished = self.client.info()["finished"]

    def apply(self, event: Event) -> None:
        row = self.mirror.apply(event)
        if row is not None and isinstance(event, Prompt) and row["Name"] in self.answers:
            self.client.send_message_to_steps(self.answers[row["Name"]], dry_run=False,
                                              n=row["n"])

    def waiting(self) -> list[dict[str, Any]]:
        return self.mirror.waiting()

    def counts(self) -> dict[str, int]:
        return self.mirror.counts()

    def outcome(self) -> int:
        states = {row[StatusField.STATE] for row in self.rows.values()}
        if states <= CLEAN:
            return EXIT_SUCCEEDED
        return EXIT_FAILED if self.finished and not self.stopped else EXIT_STOPPED

    def render(self, keys: bool = True) -> Group:
        now = time.time()
        table = Table(expand=True, title=Text(self.title, style="bold"), title_justify="left")
        table.add_column("n", justify="right", width=3)
        widest = max((len(str(row["Name"])) for row in self.rows.values()), default=4)
        table.add_column("step", no_wrap=True, min_width=min(widest, 40), overflow="ellipsis")
        table.add_column("state", width=21)
        table.add_column("time", justify="right", width=10)
        table.add_column("last output / question", ratio=1, overflow="ellipsis", no_wrap=True)
        for n in sorted(self.rows):
            row = self.rows[n]
            question = row[StatusField.UNREPLIED_PROMPT_MESSAGE]
            detail = (Text(f"? {question}", style="bold yellow") if question is not None
                      else Text(self.mirror.last(n)))
            table.add_row(str(n), row["Name"], state_text(row[StatusField.STATE]),
                          elapsed(row.get(StatusField.STARTED_AT),
                                  row.get(StatusField.FINISHED_AT), now), detail)
        summary = Text()
        for state in State:
            count = self.counts().get(state.value)
            if count:
                summary.append(f"{count} {state.value}", style=STATE_STYLES[state.value])
                summary.append("  ")
        summary.append(f"· elapsed {elapsed(self.opened, None, now)}")
        waiting = self.waiting()
        if waiting:
            summary.append(f"  · {len(waiting)} waiting for you", style="bold yellow")
        if self.finished:
            summary.append("  · finished", style="bold")
        parts: list[Any] = [table, summary]
        if self.notice is not None:
            parts.append(self.notice)
        if keys:
            parts.append(Text.from_markup(HELP, style="dim"))
        return Group(*parts)


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
        word = word.strip()
        return {"n": int(word)} if word.isdigit() else {"name": word}


def watch(client: TrailClient, title: str, console: Console, keys: bool | None = None,
          until_finished: bool = True, answers: dict[str, Any] | None = None,
          owner: bool = False, on_ready: Callable[[], Any] | None = None) -> int:
    """Show the run live until it finishes (or the operator quits); return the exit code.

    ``answers`` (step name -> reply) are sent as soon as those steps ask. The ``owner`` of
    a run (``trail run``) is asked on Ctrl-C whether to stop the trail; a watcher just
    leaves. ``on_ready`` runs once the view is subscribed and shown (``trail run`` starts
    the trail there, so no change goes unseen).
    """
    interactive = keys if keys is not None else (sys.stdin.isatty() and console.is_terminal)
    view = RunView(client, title, answers)
    with client.subscribe() as stream:
        view.load()
        if not console.is_terminal:
            return _plain(view, stream, console, until_finished, owner, on_ready)
        if on_ready is not None:
            on_ready()
        return _live(view, stream, console, interactive, until_finished, owner)


def _drain(view: RunView, stream: EventStream, timeout: float) -> bool:
    """Apply every event that arrives within ``timeout``; True if any did."""
    event = stream.next(timeout)
    changed = False
    while event is not None:
        if not isinstance(event, Hello):
            view.apply(event)
            changed = True
        event = stream.next(0)
    if changed:
        try:
            view.finished = view.client.info()["finished"]
        except TrailError:
            view.finished = True
    return changed


def _live(view: RunView, stream: EventStream, console: Console, keys: bool,
          until_finished: bool, owner: bool) -> int:
    steering = Steering(view.client)
    fd = sys.stdin.fileno() if keys else -1
    try:
        _live_loop(view, stream, console, keys, until_finished, owner, steering, fd)
    except KeyboardInterrupt:  # without keys (no terminal input to ask on)
        _on_ctrl_c(view, owner, lambda question: "y")
    _settle(view)
    console.print(view.render(keys=False))
    return view.outcome()


def _on_ctrl_c(view: RunView, owner: bool, ask: Callable[[str], str]) -> bool:
    """Ctrl-C: the owner is asked whether to stop the trail; a watcher leaves. True: leave."""
    if view.finished:
        return True
    if not owner:
        view.stopped = True
        return True
    if ask("Stop the trail (interrupt running steps, block the rest)? [y/N] ")[:1] in ("y", "Y"):
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
        live = stack.enter_context(Live(view.render(keys), console=console,
                                        refresh_per_second=4, transient=True))
        while not (until_finished and view.finished):
            if not os.path.exists(view.client.socket_file):
                view.finished = True
                break
            ready: list[int] = []
            try:
                if keys:
                    ready, _, _ = select.select([fd], [], [], 0)
                _drain(view, stream, 0.1)
            except KeyboardInterrupt:
                if not keys:
                    raise
                if _on_ctrl_c(view, owner, lambda q: _ask(live, console, fd, q)):
                    break
            if ready:
                key = os.read(fd, 1).decode(errors="replace")
                if key == "q":
                    if view.finished or _ask(live, console, fd, "Leave the view? [y/N] ")[:1] \
                            in ("y", "Y"):
                        view.stopped = not view.finished
                        break
                elif key == "a":
                    view.notice = _answer(view, steering, live, console, fd)
                elif key == ":":
                    line = _ask(live, console, fd, "trail> ")
                    view.notice = _say(steering, line)
            live.update(view.render(keys))


def _settle(view: RunView) -> None:
    """Read the final status: events still in flight must not decide the outcome."""
    with contextlib.suppress(TrailError):
        finished = view.finished
        view.load()
        view.finished = view.finished or finished


def _say(steering: Steering, line: str) -> Text:
    try:
        return Text(steering.command(line), style="bold")
    except (TrailError, ValueError) as exc:
        return Text(f"error: {exc}", style="bold red")


def _answer(view: RunView, steering: Steering, live: Live, console: Console, fd: int) -> Text:
    waiting = view.waiting()
    if not waiting:
        return Text("no step is waiting for an answer", style="yellow")
    row = waiting[0]
    if len(waiting) > 1:
        names = ", ".join(f"{r['n']} {r['Name']}" for r in waiting)
        choice = _ask(live, console, fd, f"Which step? ({names}) n: ").strip()
        matches = [r for r in waiting if str(r["n"]) == choice]
        if not matches:
            return Text(f"no step {choice!r} is waiting", style="yellow")
        row = matches[0]
    question = row[StatusField.UNREPLIED_PROMPT_MESSAGE]
    text = _ask(live, console, fd, f"{row['Name']}: {question}\n> ")
    return _say(steering, f"answer {row['n']} {text}")


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
    _settle(view)
    counts = ", ".join(f"{c} {s}" for s, c in view.counts().items())
    state = "stopped" if view.stopped else "finished" if view.finished else "left"
    console.print(f"{state}: {counts}", markup=False)
    return view.outcome()


def _plain_loop(view: RunView, stream: EventStream, console: Console,
                until_finished: bool, on_ready: Callable[[], Any] | None) -> None:
    def line(n: int, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        console.print(visible(f"{stamp}  {n:>3} {view.rows[n]['Name']:<24} {text}"),
                      markup=False, highlight=False, soft_wrap=True)

    for n, row in sorted(view.rows.items()):
        line(n, row[StatusField.STATE])
    if on_ready is not None:
        on_ready()
    while not (until_finished and view.finished):
        if not os.path.exists(view.client.socket_file):
            break
        event = stream.next(1.0)
        if event is not None:
            _print_event(view, event, line)
            if isinstance(event, StateChanged):
                with contextlib.suppress(TrailError):
                    view.finished = view.client.info()["finished"]
    # Events sent before the server said "finished" may still be on their way: show them.
    while (event := stream.next(0.2)) is not None:
        _print_event(view, event, line)


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
    elif isinstance(event, Input):
        line(n, f"> {event.message!r}")


__all__ = ["RunView", "Steering", "parse_reply", "watch"]
