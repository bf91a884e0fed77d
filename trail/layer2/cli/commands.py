"""The ``trail`` command: run a runbook with a live view, steer a running trail, diagrams.

Mutating commands do a dry run unless given ``--yes``, as the API does unless given
``dry_run=False``. Errors are one line on stderr and a non-zero exit; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import atexit
import code
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from trail.errors import TrailError
from trail.layer1.journal import Journal, default_journal_path
from trail.layer1.sockets import is_live, new_socket_file, socket_dir
from trail.layer2.cli.display import affected_text, runs_table, status_table, timeline_table
from trail.layer2.cli.liveview import parse_reply, watch
from trail.layer2.cli.repl import interactive
from trail.layer2.client import TrailClient
from trail.layer2.diagram import definition_dot, live_dot, render
from trail.layer2.runbook import load_runbook
from trail.layer2.server import TrailServer

EXIT_ERROR = 2


class Failure(click.ClickException):
    """One line for the operator, exit code 2."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"trail: error: {self.message}", err=True)


@contextlib.contextmanager
def speaking(debug: bool) -> Iterator[None]:
    """Turn trail's errors into one clear line (or, with --debug, the traceback)."""
    try:
        yield
    except (TrailError, OSError, ValueError) as exc:
        if debug:
            raise
        raise Failure(str(exc)) from exc


def live_sockets() -> list[tuple[str, bool]]:
    """Every socket file in this user's socket directory, and whether a server answers."""
    found = []
    for path in sorted(socket_dir().glob("*.sock")):
        try:
            found.append((str(path), is_live(str(path))))
        except OSError:
            found.append((str(path), False))
    return found


def resolve_socket(socket: str | None) -> str:
    """The given socket, or the only trail running for this user."""
    if socket:
        return socket
    live = [path for path, alive in live_sockets() if alive]
    if len(live) == 1:
        return live[0]
    if not live:
        raise Failure("no trail is running for you here; start one with `trail run`, "
                      "or give --socket")
    raise Failure("several trails are running; pick one with --socket:\n  " + "\n  ".join(live))


def parse_tags(client: TrailClient, pairs: tuple[str, ...]) -> dict[str, Any]:
    """TAG=VALUE words as tags, typed as the steps' own tags are (n=3 is the number 3).

    A tag no step has, or a value no step has for it, is an error: on the command line a
    typo must not silently select nothing.
    """
    tags: dict[str, Any] = {}
    if not pairs:
        return tags
    steps = client.list()
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise Failure(f"{pair!r} is not TAG=VALUE (for example name=deploy or n=3)")
        values = [tags_[key] for tags_ in steps if key in tags_]
        if not values:
            known = sorted({k for tags_ in steps for k in tags_})
            raise Failure(f"no step has a tag {key!r} (tags here: {', '.join(known)})")
        typed = [value for value in values if str(value) == text]
        if not typed:
            choices = ", ".join(sorted({str(v) for v in values})[:20])
            raise Failure(f"no step has {key}={text} ({key} is one of: {choices})")
        tags[key] = typed[0]
    return tags


def connect(ctx: click.Context, socket: str | None) -> TrailClient:
    path = resolve_socket(socket)
    return TrailClient(path, timeout=ctx.obj["timeout"])


def output(ctx: click.Context, as_json: bool, data: Any, human: Callable[[], Any]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        shown = human()
        if shown is not None:
            Console().print(shown)


SOCKET = click.option("--socket", "-s", metavar="PATH",
                      help="The trail's socket (default: the only trail running; see trail ls).")
JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
YES = click.option("--yes", "-y", is_flag=True, help="Do it (without: a dry run that only "
                   "says which steps would change).")
TAGS = click.argument("tags", nargs=-1, metavar="[TAG=VALUE]...")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--timeout", default=5.0, show_default=True,
              help="Seconds to wait for a server's answer.")
@click.version_option(package_name="trail")
@click.pass_context
def main(ctx: click.Context, debug: bool, timeout: float) -> None:
    """Run runbooks as trails of steps, and steer them while they run.

    \b
    Examples:
      trail run examples/failover.py        run a runbook with the live view
      trail ls                              the trails running here
      trail status                          status of the only running trail
      trail pause name=promote              what pausing would do (a dry run)
      trail pause name=promote --yes        pause it
    """
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, timeout=timeout)
    if debug:
        logging.basicConfig(level=logging.DEBUG)


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@SOCKET
@click.option("--start/--no-start", default=True, show_default=True,
              help="Start the trail at once, or wait for `start`.")
@click.option("--executor", type=click.Choice(["process", "thread"]), default=None,
              help="Where steps run (default: the runbook's choice, else process).")
@click.option("--answer", "answers", multiple=True, metavar="STEP=REPLY",
              help="Answer that step's question without asking (repeatable).")
@click.option("--auto-answer", is_flag=True, help="Use the runbook's ANSWERS for its questions.")
@click.option("--plain", is_flag=True, help="Plain log lines even in a terminal.")
@click.option("--journal", metavar="PATH",
              help="The journal file (default: $XDG_STATE_HOME/trail/journal.sqlite3).")
@click.option("--resume/--fresh", default=None,
              help="Take up the journal's latest run of this runbook even if it was shut down "
                   "/ start a new run even if the last one's server died. Default: take up a "
                   "run whose server died, else start anew.")
@click.option("--log", "log_file", metavar="PATH",
              help="Where the engine's log and the steps' own stdout/stderr go "
                   "(default: beside the socket, as .log).")
@click.pass_context
def run(ctx: click.Context, runbook: str, socket: str | None, start: bool,
        executor: str | None, answers: tuple[str, ...], auto_answer: bool, plain: bool,
        journal: str | None, resume: bool | None, log_file: str | None) -> None:
    """Run a runbook, showing it live; steer it with keys, or from another terminal.

    A runbook is a Python file defining `trail` (and optionally `context`, `executor`,
    `ANSWERS`). Exit code: 0 all steps succeeded (or were skipped), 1 it finished with
    failed or blocked steps, 3 it was stopped or left unfinished, 2 an error.

    \b
    Example:
      trail run examples/failover.py --answer choose_replica=db2
    """
    debug = ctx.obj["debug"]
    with speaking(debug):
        book = load_runbook(runbook)
        socket = os.path.abspath(socket) if socket else new_socket_file(book.name)
        log_path = log_file or socket + ".log"
        if not debug:
            logging.basicConfig(filename=log_path, level=logging.INFO, force=True,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        server = TrailServer(book.trail, socket_file=socket, context=book.context,
                             executor=executor or book.executor, name=book.name,
                             step_output=log_path, journal=journal, resume=resume)
        replies = {**(book.answers if auto_answer else {}), **dict(_reply(a) for a in answers)}
        server.serve(threaded=True)
        client = TrailClient(server.socket_file, timeout=ctx.obj["timeout"])
        console = Console(force_terminal=False if plain else None)
        console.print(f"trail {book.name}: serving at {server.socket_file}  (log: {log_path})",
                      markup=False, highlight=False, soft_wrap=True)
        if server.resumed and server.journal is not None:
            console.print(f"took up run {server.run_id} from the journal {server.journal.path}"
                          f" (steps that were running come back Interrupted: resume or rerun "
                          f"them)", markup=False, highlight=False, soft_wrap=True)
            start = False  # a taken-up run was started already
        try:
            code_ = watch(client, f"trail {book.name}", console,
                          keys=None if not plain else False, answers=replies, owner=True,
                          on_ready=(lambda: client.start(dry_run=False)) if start else None)
        finally:
            with contextlib.suppress(TrailError):
                client.shutdown(dry_run=False)
            server.join(30)
        console.print(f"exit {code_}: " + {0: "all steps succeeded", 1: "some steps failed",
                                           3: "stopped before the end"}.get(code_, ""),
                      markup=False, highlight=False)
    ctx.exit(code_)


def _reply(pair: str) -> tuple[str, Any]:
    name, sep, text = pair.partition("=")
    if not sep:
        raise Failure(f"--answer takes STEP=REPLY, not {pair!r}")
    return name, parse_reply(text)


@main.command(name="watch")
@SOCKET
@click.option("--plain", is_flag=True, help="Plain log lines even in a terminal.")
@click.pass_context
def watch_command(ctx: click.Context, socket: str | None, plain: bool) -> None:
    """Watch a trail someone else runs, live (fed by its event stream)."""
    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        name = client.info().get("name", "trail")
        console = Console(force_terminal=False if plain else None)
        ctx.exit(watch(client, f"trail {name} (watching)", console,
                       keys=None if not plain else False))


@main.command()
@click.argument("run_id", required=False, type=int)
@click.option("--journal", metavar="PATH",
              help="The journal file (default: $XDG_STATE_HOME/trail/journal.sqlite3).")
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@click.option("--states-only", is_flag=True,
              help="In a timeline, state changes only (not what steps said and were told).")
@JSON
@click.pass_context
def history(ctx: click.Context, run_id: int | None, journal: str | None, limit: int,
            states_only: bool, as_json: bool) -> None:
    """Past runs from the journal, or one run's timeline: who changed what, when, and what
    the steps said, asked and were told.

    \b
    Examples:
      trail history
      trail history 12
    """
    with speaking(ctx.obj["debug"]):
        path = Path(journal) if journal else default_journal_path()
        if not path.exists():
            raise Failure(f"no journal at {path}")
        book = Journal(path)
        if run_id is None:
            runs = book.runs(limit)
            if as_json:
                click.echo(json.dumps(runs, indent=2, default=str))
                return
            Console().print(runs_table(runs))
            return
        run = book.run(run_id)
        if run is None:
            raise Failure(f"no run {run_id} in {path}")
        timeline = book.timeline(run_id, messages=not states_only)
        if as_json:
            click.echo(json.dumps({"run": run, "timeline": timeline}, indent=2, default=str))
            return
        Console().print(timeline_table(run, timeline))


@main.command(name="ls")
@JSON
def list_trails(as_json: bool) -> None:
    """The trails running on this machine for you."""
    rows = []
    for path, alive in live_sockets():
        row: dict[str, Any] = {"socket": path, "live": alive}
        if alive:
            try:
                info = TrailClient(path, timeout=2).info()
                row.update(name=info.get("name"), pid=info.get("pid"), steps=info.get("steps"),
                           finished=info.get("finished"), counts=info.get("counts"))
            except TrailError as exc:
                row.update(live=False, error=str(exc))
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no trail is running")
    for row in rows:
        if row["live"]:
            counts = ", ".join(f"{c} {s}" for s, c in (row.get("counts") or {}).items())
            click.echo(f"{row['socket']}  {row.get('name')}  pid {row.get('pid')}  {counts}")
        else:
            click.echo(f"{row['socket']}  (stale: no server answers)")


@main.command()
@SOCKET
@TAGS
@click.option("--state", "states", multiple=True, help="Only steps in this state.")
@click.option("--field", "fields", multiple=True, help="Fields to show (StatusField values).")
@JSON
@click.pass_context
def status(ctx: click.Context, socket: str | None, tags: tuple[str, ...],
           states: tuple[str, ...], fields: tuple[str, ...], as_json: bool) -> None:
    """Status of the steps (all, or those with the given tags).

    \b
    Example:
      trail status phase=switch --state Running
    """
    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        rows = client.status(fields=list(fields) or None, states=list(states) or None,
                             **parse_tags(client, tags))
        output(ctx, as_json, rows, lambda: status_table(rows) if rows else "no step matches")


@main.command(name="list")
@SOCKET
@TAGS
@JSON
@click.pass_context
def list_steps(ctx: click.Context, socket: str | None, tags: tuple[str, ...],
               as_json: bool) -> None:
    """The steps and their tags, in order."""
    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        rows = client.list(**parse_tags(client, tags))
        output(ctx, as_json, rows, lambda: status_table(rows) if rows else "no step matches")


def _mutating(call: str, summary: str, example: str) -> None:
    @main.command(name=call.replace("_", "-"), help=f"{summary}\n\n\b\nExample:\n  {example}")
    @SOCKET
    @TAGS
    @YES
    @JSON
    @click.pass_context
    def command(ctx: click.Context, socket: str | None, tags: tuple[str, ...], yes: bool,
                as_json: bool) -> None:
        with speaking(ctx.obj["debug"]):
            client = connect(ctx, socket)
            steps = getattr(client, call)(dry_run=not yes, **parse_tags(client, tags))
            output(ctx, as_json, {"call": call, "dry_run": not yes, "steps": steps},
                   lambda: affected_text(call, steps, not yes))


for _call, _summary, _example in [
    ("start", "Start the trail (Ready steps begin).", "trail start --yes"),
    ("pause", "Pause steps before they run.", "trail pause name=promote --yes"),
    ("resume", "Resume paused, failed-and-paused or interrupted steps.",
     "trail resume name=promote --yes"),
    ("skip", "Skip steps: they count as done without running.", "trail skip n=4 --yes"),
    ("unskip", "Take back a skip not yet done.", "trail unskip n=4 --yes"),
    ("block", "Block steps: they and their branch never run.", "trail block phase=notify --yes"),
    ("unblock", "Take back a block.", "trail unblock phase=notify --yes"),
    ("interrupt", "Stop running steps now (they become Interrupted).",
     "trail interrupt name=promote --yes"),
    ("rerun", "Run failed or interrupted steps again.", "trail rerun name=verify --yes"),
    ("pause_branch", "Pause steps and the branch below them.",
     "trail pause-branch name=announce_needed --yes"),
    ("resume_branch", "Resume steps and the branch below them.",
     "trail resume-branch name=announce_needed --yes"),
    ("stop", "Interrupt running steps and block the rest.", "trail stop --yes"),
]:
    _mutating(_call, _summary, _example)


@main.command(name="next")
@click.argument("count", type=int, default=1)
@SOCKET
@YES
@JSON
@click.pass_context
def next_step(ctx: click.Context, count: int, socket: str | None, yes: bool,
              as_json: bool) -> None:
    """Resume the next COUNT paused steps, in order.

    \b
    Example:
      trail next --yes
    """
    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        steps = client.next_step(step_count=count, dry_run=not yes)
        output(ctx, as_json, {"call": "next_step", "dry_run": not yes, "steps": steps},
               lambda: affected_text("next_step", steps, not yes))


@main.command()
@click.argument("message")
@SOCKET
@TAGS
@YES
@JSON
@click.pass_context
def send(ctx: click.Context, message: str, socket: str | None, tags: tuple[str, ...],
         yes: bool, as_json: bool) -> None:
    """Send MESSAGE to running steps (answer a question; true marks an Instruction done).

    MESSAGE is read as JSON when it is JSON (true, 3, "text"), else as text.

    \b
    Example:
      trail send db2 name=choose_replica --yes
    """
    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        steps = client.send_message_to_steps(parse_reply(message), dry_run=not yes,
                                             **parse_tags(client, tags))
        output(ctx, as_json, {"call": "send_message_to_steps", "dry_run": not yes,
                              "steps": steps},
               lambda: affected_text("send", steps, not yes))


@main.command()
@SOCKET
@YES
@JSON
@click.pass_context
def shutdown(ctx: click.Context, socket: str | None, yes: bool, as_json: bool) -> None:
    """Shut the trail server down (running steps are interrupted)."""
    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        done = client.shutdown(dry_run=not yes)
        output(ctx, as_json, {"call": "shutdown", "dry_run": not yes, "done": done},
               lambda: "the server is shutting down" if done else
               "DRY RUN: shutdown --yes would stop the server")


@main.command()
@SOCKET
@click.pass_context
def attach(ctx: click.Context, socket: str | None) -> None:
    """A Python REPL bound to a trail: `client`, and status(), pause(...), ... printed.

    Completion with Tab, history in ~/.trail_history.
    """
    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        info = client.info()
    namespace: dict[str, Any] = {"client": client}
    interactive(client, namespace)
    _readline(namespace)
    banner = (f"trail attached to {info.get('name')} at {client.socket_file}\n"
              f"client is a TrailClient; status(), pause(name=..., dry_run=False), next_step(), "
              f"... print their results; names.<step> completes step names.")
    code.interact(banner=banner, local=namespace, exitmsg="detached")


def _readline(namespace: dict[str, Any]) -> None:
    try:
        import readline
        import rlcompleter
    except ImportError:  # no readline on this Python: the REPL works without completion
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)
    readline.parse_and_bind("tab: complete")
    history = Path.home() / ".trail_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(history)

    atexit.register(save)


@main.command()
@click.argument("runbook", required=False, type=click.Path(dir_okay=False))
@SOCKET
@click.option("-o", "--output", "out", required=True, metavar="FILE",
              help="Where to write: .dot, .svg, .png or .pdf.")
@click.pass_context
def dot(ctx: click.Context, runbook: str | None, socket: str | None, out: str) -> None:
    """Draw a runbook's trail, or a running trail coloured by state.

    \b
    Examples:
      trail dot examples/failover.py -o failover.svg
      trail dot --socket /tmp/trail-1000/x.sock -o now.png
    """
    with speaking(ctx.obj["debug"]):
        if runbook:
            graph = definition_dot(load_runbook(runbook).trail)
        else:
            graph = live_dot(connect(ctx, socket))
        click.echo(str(render(graph, out)))


