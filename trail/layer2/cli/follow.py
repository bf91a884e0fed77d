"""Following a run: its status kept current from the server's event stream, and, without
a terminal, printed as plain log lines (for CI and cron).

Used by ``trail run`` (which also serves the trail) and ``trail watch`` (which attaches to
one served elsewhere). In a terminal ``watch`` hands the view to ``liveview`` (a rich Live
table the operator steers from); without one nothing here imports rich, so ``trail run
--plain`` starts and prints fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from trail.core.states import State
from trail.errors import TrailError
from trail.layer1.calls import json_or_text
from trail.layer1.events import Event, Hello, Input, Output, Prompt, StateChanged, StepEvent
from trail.layer1.wire import StatusField
from trail.layer2.cli.plain import PlainConsole, visible
from trail.layer2.client import TrailClient
from trail.layer2.groups import BY_NAME, Filter, Index
from trail.layer2.mirror import StatusMirror
from trail.layer2.stream import EventStream

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# The mirror keeps the latest output line of each step besides these.
FIELDS = [StatusField.STATE, StatusField.UNREPLIED_PROMPT_MESSAGE, StatusField.STARTED_AT,
          StatusField.FINISHED_AT, StatusField.TAGS]
SMALL = 40  # a run of at most this many steps (or that fits the terminal): a row per step
DRAIN_FOR = 0.1  # seconds of events applied before the view draws again

# One end state, one exit code (README "Exit codes"):
EXIT_SUCCEEDED = 0  # every step succeeded or was skipped
EXIT_FAILED = 1  # it finished with failed steps, or --fail-fast ended it at a failure
EXIT_STOPPED = 3  # stopped (stop, Ctrl-C, q, SIGTERM) or left before it finished

CLEAN = {State.SUCCEEDED.value, State.SKIPPED.value}
FAILURES = {State.FAILED.value, State.PAUSED_ON_FAIL.value}


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


def watch(client: TrailClient, title: str, console: Console, keys: bool | None = None,
          until_finished: bool = True, answers: dict[str, Any] | None = None,
          owner: bool = False, on_ready: Callable[[], Any] | None = None,
          fail_fast: bool = False, live: Callable[..., int] | None = None) -> int:
    """Show the run live until it finishes (or the operator quits); return the exit code.

    ``answers`` (step name -> reply) are sent as soon as those steps ask. The ``owner`` of
    a run (``trail run``) is asked on Ctrl-C whether to stop the trail; a watcher just
    leaves. ``on_ready`` runs once the view is subscribed and shown (``trail run`` starts
    the trail there, so no change goes unseen). With ``fail_fast`` the first failure ends
    the view (exit 1); the owner then stops the trail. ``live`` draws it in a terminal
    (``liveview.live``, passed in so that rich is loaded for a terminal alone); without
    it, or without a terminal, the view prints plain lines.
    """
    interactive = keys if keys is not None else (sys.stdin.isatty() and console.is_terminal)
    view = RunView(client, title, answers, fail_fast)
    with client.subscribe() as stream:
        view.load()
        if live is None or not console.is_terminal:
            return _plain(view, stream, console, until_finished, owner, on_ready)
        if on_ready is not None:
            on_ready()
        return live(view, stream, console, interactive, until_finished, owner)


def drain(view: RunView, stream: EventStream, timeout: float) -> bool:
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
            caught_up(view, stream, changed, info.get("published", 0))
        except TrailError:
            view.gone = True
    return changed


def caught_up(view: RunView, stream: EventStream, changed: bool, published: int) -> None:
    """The last events sent may be the ones lost, and then no later event tells of the
    gap: when the server has sent more than arrived, and a second later still nothing
    came, the view reads the status again."""
    behind = not changed and stream.last_seq is not None and published > stream.last_seq
    if behind and view.behind == published:
        stream.settle(published)
        view.load()
        published = 0
    view.behind = published if behind else 0


def end_fail_fast(view: RunView, console: Console, owner: bool) -> None:
    """A failure under --fail-fast: say so; the owner stops the trail (exit 1)."""
    if view.failed_fast is None or view.finished:
        return
    console.print(f"--fail-fast: step {view.failed_fast} failed; stopping the trail",
                  markup=False, highlight=False)
    if owner:
        with contextlib.suppress(TrailError):
            view.client.stop(dry_run=False)


def on_ctrl_c(view: RunView, owner: bool, ask: Callable[[str], str]) -> bool:
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


def settle(view: RunView) -> None:
    """Read the final status: events still in flight must not decide the outcome."""
    with contextlib.suppress(TrailError):
        finished = view.finished
        view.load()
        view.finished = view.finished or finished


def _plain(view: RunView, stream: EventStream, console: Console, until_finished: bool,
           owner: bool, on_ready: Callable[[], Any] | None) -> int:
    try:
        _plain_loop(view, stream, console, until_finished, on_ready)
    except KeyboardInterrupt:  # no terminal to ask on: the owner stops the trail
        on_ctrl_c(view, owner, lambda question: "y")
    end_fail_fast(view, console, owner)
    settle(view)
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


__all__ = ["PlainConsole", "RunView", "Terminated", "parse_reply", "stop_on_signals", "watch"]
