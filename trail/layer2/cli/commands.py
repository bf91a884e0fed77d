"""The ``trail`` command: run a runbook with a live view, steer a running trail, diagrams.

The steering and reading commands (pause, next, send, status, ...) are generated from the
table of calls by ``add_commands``; run, watch, history, ls, attach and dot are written
here. Mutating commands do a dry run unless given ``--yes``, as the API does unless given
``dry_run=False``. Errors are one line on stderr and a non-zero exit; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import logging
import math
import os
import signal
import stat
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trail.core.states import Action, State, states_for
from trail.errors import TrailError
from trail.layer1.calls import SPECS, Argument, Call, CallSpec, Result
from trail.layer1.sockets import (
    check_owner,
    events_file,
    is_live,
    new_socket_file,
    private_file,
    socket_dir,
)
from trail.layer2.client import TrailClient

if TYPE_CHECKING:
    from trail.layer1.events import Event
    from trail.layer2.stream import EventStream

# A command that only speaks the API loads no more than it needs: the journal, the server,
# the runbook loader and the views are imported by the commands that use them.

EXIT_ERROR = 2


class Failure(click.ClickException):
    """One line for the operator, exit code 2."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"trail: error: {self.message}", err=True)


# What a command turns into one line for the operator (a damaged journal read without
# verifying raises sqlite3.DatabaseError too, see _expected).
EXPECTED = (TrailError, OSError, ValueError, ArithmeticError, RecursionError)


def _expected(exc: BaseException) -> bool:
    """An error the operator gets as one line. (sqlite3 is looked up, not imported: a
    command that never loaded it cannot have raised its errors.)"""
    sqlite3 = sys.modules.get("sqlite3")
    return isinstance(exc, EXPECTED) or (
        sqlite3 is not None and isinstance(exc, sqlite3.DatabaseError))


@contextlib.contextmanager
def speaking(debug: bool) -> Iterator[None]:
    """Turn trail's errors into one clear line (or, with --debug, the traceback)."""
    try:
        yield
    except Exception as exc:
        if debug or not _expected(exc):
            raise
        raise Failure(str(exc)) from exc


def live_sockets(prune: bool = False) -> list[tuple[str, bool]]:
    """Every socket file in this user's socket directory, and whether a server answers;
    with ``prune``, a stale one (no server answers: it crashed) is removed instead."""
    found = []
    for path in sorted(socket_dir().glob("*.sock")):
        try:
            alive = is_live(str(path))
        except OSError:
            alive = False
        if not alive and prune:
            for stale in (path, Path(events_file(str(path)))):
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(stale.lstat().st_mode):
                        stale.unlink()
            continue
        found.append((str(path), alive))
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


SOCKET_HELP = "The trail's socket (default: the only trail running; see trail ls)."
YES_HELP = "Do it (without: a dry run that only says which steps would change)."
JSON_HELP = "Machine-readable output."
SOCKET = click.option("--socket", "-s", metavar="PATH", help=SOCKET_HELP)
JSON = click.option("--json", "as_json", is_flag=True, help=JSON_HELP)


MAX_TIMEOUT = 7 * 24 * 3600.0  # a week: more is a typo, and beyond what poll() takes


def _check_timeout(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
        raise click.BadParameter(f"{value!r} is not a number of seconds above 0 and at most "
                                 f"{MAX_TIMEOUT:g}")
    return value


# Commands defined in other modules, loaded when named (or listed, for help): `trail run`
# does not pay for the web page's, the schedules', the YAML runbooks' or the logs' imports.
# name -> (module, the function that registers its commands on ``main``; None: the module
# registers them itself, or defines the command under its name).
LAZY_COMMANDS: dict[str, tuple[str, str | None]] = {
    "logs": ("trail.layer2.cli.logs", None),
    "prune": ("trail.layer2.cli.prune", None),
    "validate": ("trail.layer2.cli.yamlbook", None),
    "schema": ("trail.layer2.cli.yamlbook", None),
    "export": ("trail.layer2.cli.yamlbook", None),
    "schedule": ("trail.layer2.cli.schedule", "add_schedule_commands"),
    "scheduler": ("trail.layer2.cli.schedule", "add_schedule_commands"),
    "web": ("trail.layer2.cli.web", None),
}


class _Commands(click.Group):
    """The ``trail`` group: the commands of LAZY_COMMANDS load on first use."""

    def _load(self, name: str) -> None:
        module_name, register = LAZY_COMMANDS[name]
        if name in self.commands:
            return
        module = importlib.import_module(module_name)
        if register is not None:
            getattr(module, register)(self)
        elif name not in self.commands and isinstance(getattr(module, name, None),
                                                        click.Command):
            self.add_command(getattr(module, name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for name in LAZY_COMMANDS:
            self._load(name)
        return super().list_commands(ctx)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--timeout", default=5.0, show_default=True, callback=_check_timeout,
              help=f"Seconds to wait for a server's answer (above 0, at most {MAX_TIMEOUT:g}).")
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
    else:  # the library's warnings (a fallback it took, a file it skipped) reach the operator
        logging.basicConfig(level=logging.WARNING, format="trail: warning: %(message)s")


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@SOCKET
@click.option("--start/--no-start", default=True, show_default=True,
              help="Start the trail at once, or wait for `start`.")
@click.option("--executor", type=click.Choice(["process", "thread", "dask"]), default=None,
              help="Where steps run (default: the runbook's choice, else process).")
@click.option("--dask", "dask_address", metavar="ADDRESS", envvar="TRAIL_DASK_ADDRESS",
              help="The Dask scheduler dask steps run on (tcp://host:8786; "
                   "default: $TRAIL_DASK_ADDRESS).")
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
@click.option("--notify", "notify", multiple=True, metavar="URL",
              help="Tell a person when a step fails or waits (an apprise URL such as "
                   "mailto://... or 'failed,escalation=URL'; repeatable).")
@click.option("--allow-concurrent", is_flag=True,
              help="Run it even if this runbook is already running (a second run of the "
                   "same steps, with a journal run of its own).")
@click.option("--fail-fast", is_flag=True,
              help="End the run (stop it, exit 1) at the first failure instead of waiting "
                   "for an operator to rerun or skip the step.")
@click.pass_context
def run(ctx: click.Context, runbook: str, socket: str | None, start: bool,
        executor: str | None, answers: tuple[str, ...], auto_answer: bool, plain: bool,
        journal: str | None, resume: bool | None, log_file: str | None,
        notify: tuple[str, ...], allow_concurrent: bool, fail_fast: bool,
        dask_address: str | None = None) -> None:
    """Run a runbook, showing it live; steer it with keys, or from another terminal.

    A runbook is a Python file defining `trail` (and optionally `context`, `executor`,
    `ANSWERS`). The run stays open while a step is blocked, paused or waits for an answer:
    it ends when every step succeeded, was skipped or failed for good, or when you stop
    it. Exit code: 0 all steps succeeded (or were skipped), 1 it finished with failed steps
    (or --fail-fast stopped it at a failure), 3 it was stopped (stop, Ctrl-C, q, SIGTERM,
    SIGHUP) before it finished, 2 an error.

    \b
    Example:
      trail run examples/failover.py --answer choose_replica=db2
    """
    from trail.layer2.cli.follow import stop_on_signals, watch
    from trail.layer2.cli.plain import stop_summary
    from trail.layer2.runbook import load_runbook
    from trail.layer2.server import TrailServer

    debug = ctx.obj["debug"]
    with speaking(debug):
        book = load_runbook(runbook)
        origin = str(Path(runbook).resolve())
        if not allow_concurrent:
            already_running(book.name, origin, journal, plain)
        socket = os.path.abspath(socket) if socket else new_socket_file(book.name)
        check_owner(Path(socket).parent, "the socket's")
        log_path = private_file(log_file or socket + ".log")
        if not debug:
            logging.basicConfig(filename=log_path, level=logging.INFO, force=True,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        server = TrailServer(book.trail, socket_file=socket, context=book.context,
                             executor=executor or book.executor, name=book.name,
                             step_output=log_path, journal=journal, resume=resume,
                             max_parallel=book.max_parallel,
                             notify=list(notify), dask=dask_address, origin=origin,
                             dag_file=False)  # the journal takes a crashed run up
        replies = {**(book.answers if auto_answer else {}), **dict(_reply(a) for a in answers)}
        server.serve(threaded=True)
        stop_on_signals()  # SIGTERM, SIGHUP: stop the trail as `stop` does, then exit 3
        # Its own server, in this process: busy (a step holding the GIL), never gone unseen.
        client = TrailClient(server.socket_file, timeout=ctx.obj["timeout"],
                             wait_while=server.alive)
        console = view_console(plain)
        console.print(f"trail {book.name}: serving at {server.socket_file}  (log: {log_path})",
                      markup=False, highlight=False, soft_wrap=True)
        if server.resumed and server.journal is not None:
            console.print(f"took up run {server.run_id} from the journal {server.journal.path}"
                          f" (steps that were running come back Interrupted: resume or rerun "
                          f"them)", markup=False, highlight=False, soft_wrap=True)
            start = False  # a taken-up run was started already
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # A shell without job control (a script's `trail run ... &`) starts background
            # commands with SIGINT ignored, so that the terminal's Ctrl-C leaves them be.
            # trail keeps that choice, as Python does; say how to stop it instead.
            console.print(f"note: SIGINT is ignored here (started in the background by a "
                          f"script): stop this run with SIGTERM (kill {os.getpid()}) or "
                          f"trail stop --socket {server.socket_file} --yes",
                          markup=False, highlight=False, soft_wrap=True)
        for problem in client.info().get("context_problems") or []:
            console.print(f"warning: {problem}", markup=False, highlight=False, soft_wrap=True)
        try:
            code_ = watch(client, f"trail {book.name}", console,
                          keys=None if not plain else False, answers=replies, owner=True,
                          on_ready=(lambda: client.start(dry_run=False)) if start else None,
                          fail_fast=fail_fast, live=terminal_view(console))
        finally:
            with contextlib.suppress(TrailError):
                client.shutdown(dry_run=False)
            server.join(30)
            for line in stop_summary(server.stopped_runs):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(f"exit {code_}: " + {0: "all steps succeeded", 1: "some steps failed",
                                           3: "stopped before the end (steps left: resume "
                                              "with trail run --resume)"}.get(code_, ""),
                      markup=False, highlight=False)
    ctx.exit(code_)


def view_console(plain: bool) -> Any:
    """Where a run's view prints: plain lines with --plain or when stdout is not a terminal
    (rich is then not even imported), else rich's Console for the live view."""
    from trail.layer2.cli.plain import PlainConsole

    if plain or not sys.stdout.isatty():
        return PlainConsole()
    return rich_console()


def terminal_view(console: Any) -> Any:
    """The live view for a terminal (rich's, imported for one alone), or None."""
    if not console.is_terminal:
        return None
    from trail.layer2.cli.liveview import live

    return live


def rich_console() -> Any:
    from rich.console import Console  # imported by the commands that draw with it alone

    return Console()


def already_running(name: str, origin: str, journal: str | None, plain: bool) -> None:
    """A run of this runbook is being served: ask (in a terminal) or refuse."""
    import sqlite3

    from trail.layer1.journal import Journal, default_journal_path

    path = Path(journal) if journal else default_journal_path()
    if not path.exists():
        return
    try:
        book = Journal(path, verify=False)  # the server verifies it as it opens it
        try:
            latest = book.latest_run(name, origin)
        finally:
            book.close()
    except (TrailError, sqlite3.DatabaseError):
        return  # a damaged journal: the server refuses it, saying so
    if latest is None or latest["ended"] is not None or not latest["socket"]:
        return
    try:
        if not is_live(latest["socket"]):
            return
    except OSError:
        return
    started = time.strftime("%H:%M:%S", time.localtime(latest["started"]))
    said = (f"{origin} is already running: run {latest['id']}, started {started}, pid "
            f"{latest['pid']}, socket {latest['socket']} (watch it: trail watch --socket "
            f"{latest['socket']})")
    if not plain and sys.stdin.isatty() and sys.stdout.isatty():
        if click.confirm(f"{said}\nRun it a second time, at the same time?", default=False):
            return
        raise Failure("not started")
    raise Failure(f"{said}; to run it a second time at once, pass --allow-concurrent")


def _reply(pair: str) -> tuple[str, Any]:
    from trail.layer2.cli.follow import parse_reply

    name, sep, text = pair.partition("=")
    if not sep:
        raise Failure(f"--answer takes STEP=REPLY, not {pair!r}")
    return name, parse_reply(text)


@main.command(name="notify-test")
@click.argument("url")
@click.pass_context
def notify_test(ctx: click.Context, url: str) -> None:
    """Send a sample notice to URL (an apprise URL), to check a destination.

    \b
    Example:
      trail notify-test 'mailto://me:app-password@gmail.com'
    """
    from trail.layer2.notify import send_test

    with speaking(ctx.obj["debug"]):
        where, sent = send_test(url)
        if not sent:
            raise Failure(f"the notice could not be sent to {where} (see the messages above)")
        click.echo(f"sent a test notice to {where}")


@main.command(name="watch")
@SOCKET
@click.option("--plain", is_flag=True, help="Plain log lines even in a terminal.")
@click.pass_context
def watch_command(ctx: click.Context, socket: str | None, plain: bool) -> None:
    """Watch a trail someone else runs, live (fed by its event stream). `q` leaves the
    view; the trail goes on.

    \b
    Examples:
      trail watch
      trail watch --socket /run/user/1000/trail/failover-4242-a1b2c3.sock --plain
    """
    from trail.layer2.cli.follow import watch

    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        name = client.info().get("name", "trail")
        console = view_console(plain)
        ctx.exit(watch(client, f"trail {name} (watching)", console,
                       keys=None if not plain else False, live=terminal_view(console)))


@main.command()
@click.argument("run_id", required=False, type=click.IntRange(1, 2**63 - 1))
@click.option("--journal", metavar="PATH",
              help="The journal file (default: $XDG_STATE_HOME/trail/journal.sqlite3).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 2**63 - 1),
              help="How many runs to list.")
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
    from trail.layer1.journal import Journal, default_journal_path

    with speaking(ctx.obj["debug"]):
        path = Path(journal) if journal else default_journal_path()
        if not path.exists():
            raise Failure(f"no journal at {path}")
        book = Journal(path, verify=False)
        if run_id is None:
            runs = book.runs(limit)
            for past in runs:
                if past["ended"] is None:
                    try:
                        past["live"] = bool(past["socket"]) and is_live(past["socket"])
                    except OSError:
                        past["live"] = False
            if as_json:
                click.echo(json.dumps(runs, indent=2, default=str))
                return
            from trail.layer2.cli.display import runs_table

            rich_console().print(runs_table(runs))
            return
        run = book.run(run_id)
        if run is None:
            raise Failure(f"no run {run_id} in {path}")
        timeline = book.timeline(run_id, messages=not states_only)
        if not states_only:
            from trail.layer2.notify.ledger import timeline_entries

            names = {n: name for n, name in run["shape"]["steps"]}
            timeline = sorted(timeline + timeline_entries(book.db, run_id, names),
                              key=lambda entry: entry["time"])
        if as_json:
            click.echo(json.dumps({"run": run, "timeline": timeline}, indent=2, default=str))
            return
        from trail.layer2.cli.display import timeline_table

        rich_console().print(timeline_table(run, timeline))


def run_state(info: dict[str, Any]) -> str:
    """A served run's state in a word or two."""
    if info.get("finished"):
        return f"finished ({info.get('end')})"
    if info.get("idle"):
        return "waiting for you"
    return "running"


@main.command(name="ls")
@JSON
def list_trails(as_json: bool) -> None:
    """The trails running on this machine for you: socket, name, run id, start, state.
    Sockets left by servers that died are removed.

    \b
    Examples:
      trail ls
      trail ls --json
    """
    rows = []
    for path, alive in live_sockets(prune=True):
        row: dict[str, Any] = {"socket": path, "live": alive}
        try:
            info = TrailClient(path, timeout=2).info()
            row.update(name=info.get("name"), run=info.get("run"), pid=info.get("pid"),
                       started=info.get("started"), state=run_state(info),
                       origin=info.get("origin"), steps=info.get("steps"),
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
            started = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"]))
                       if row.get("started") else "?")
            run = f"run {row['run']}" if row.get("run") is not None else "no journal"
            click.echo(f"{row['socket']}  {row.get('name')}  {run}  started {started}  "
                       f"{row['state']}  pid {row.get('pid')}  {counts}")
        else:
            click.echo(f"{row['socket']}  (does not answer: {row.get('error')})")


def add_commands(group: click.Group, specs: Iterable[CallSpec]) -> None:
    """A command in ``group`` for each call in ``specs`` that belongs on the command line.

    Every command takes ``--socket`` and ``--json``; a call that selects steps takes
    TAG=VALUE words (typed as the steps' own tags), a mutating call ``--yes`` (without it,
    a dry run), and the call's own arguments as the table says: a word (``trail next
    [COUNT]``, ``trail send MESSAGE``) or a repeatable option (``--field``).
    """
    for spec in specs:
        if spec.cli:
            group.add_command(call_command(spec))


def call_command(spec: CallSpec) -> click.Command:
    """The ``trail`` command of one call."""
    params: list[click.Parameter] = [
        click.Argument([argument.name], type=argument.from_text,
                       metavar=argument.cli if argument.required else f"[{argument.cli}]",
                       required=argument.required,
                       default=None if argument.required else argument.default)
        for argument in spec.arguments if not argument.option
    ]
    if spec.selects:
        params.append(click.Argument(["tags"], nargs=-1, metavar="[TAG=VALUE]..."))
    params += [click.Option([argument.cli, argument.name], multiple=True, help=argument.help)
               if argument.many else
               click.Option([argument.cli, argument.name], type=argument.from_text,
                            default=None, help=argument.help)
               for argument in spec.arguments if argument.option]
    params.append(click.Option(["--socket", "-s"], metavar="PATH", help=SOCKET_HELP))
    if spec.mutating:
        params.append(click.Option(["--yes", "-y"], is_flag=True, help=YES_HELP))
    params.append(click.Option(["--json", "as_json"], is_flag=True, help=JSON_HELP))

    @click.pass_context
    def command(ctx: click.Context, socket: str | None, as_json: bool, yes: bool = False,
                tags: tuple[str, ...] = (), **values: Any) -> None:
        from trail.layer2.cli.plain import stop_summary

        with speaking(ctx.obj["debug"]):
            client = connect(ctx, socket)
            args = {argument.name: _given(argument, values[argument.name])
                    for argument in spec.arguments}
            if spec.mutating:
                args["dry_run"] = not yes
            if spec.selects:
                args["tags"] = parse_tags(client, tags)
            # A stop is followed to its end: how many hosts confirmed it.
            follow = yes and not as_json and spec.name in (Call.STOP, Call.INTERRUPT)
            stream = client.subscribe() if follow else None
            try:
                result = client.call(spec.name, **args)
                show(spec, result, as_json, dry_run=not yes)
                if stream is not None and result:
                    for line in stop_summary(follow_stops(stream, result)):
                        click.echo(line)
            finally:
                if stream is not None:
                    stream.close()
            if spec.name in (Call.BLOCK, Call.PAUSE) and result and not as_json:
                stranded_note(client, result, dry_run=not yes,
                              until="unblocked" if spec.name == Call.BLOCK else "resumed")
            if spec.result is Result.STEPS and spec.selects and not result and not as_json:
                why_nothing(client, spec.name, dict(args["tags"]))

    return click.Command(spec.command_name, callback=command, params=params,
                         help=spec.help(), short_help=spec.summary)


STOP_FOLLOW_LIMIT = 120.0  # seconds; the server gives up on a stopped run well before
STOP_FOLLOW_QUIET = 15.0  # seconds without any event: what is left is still stopping


def follow_stops(stream: EventStream, steps: list[dict[str, Any]]) -> list[Event]:
    """The ``stopped`` events of the runs a stop or interrupt call stopped, as they come
    (each once its run ends, or the server gives up on it); a line says how many are
    still stopping when the wait ends before them (a long grace period, lost events)."""
    from trail.layer1.events import Stopped

    waiting = {step["n"] for step in steps}
    seen: list[Event] = []
    deadline = time.monotonic() + STOP_FOLLOW_LIMIT
    while waiting and (left := deadline - time.monotonic()) > 0:
        event = stream.next(min(left, STOP_FOLLOW_QUIET))
        if event is None:
            break
        if isinstance(event, Stopped) and event.n in waiting:
            waiting.discard(event.n)
            seen.append(event)
    if waiting:
        click.echo(f"{len(waiting)} stopped step(s) still stopping, no word yet: "
                   + ", ".join(str(n) for n in sorted(waiting)[:10])
                   + (" ..." if len(waiting) > 10 else ""))
    return seen


def _given(argument: Argument, value: Any) -> Any:
    """A command's value of an argument as the call takes it (not given: its default)."""
    if not argument.option:
        return value
    if argument.many:
        return list(value) or argument.default
    return argument.default if value is None else value


def why_nothing(client: TrailClient, call: str, tags: dict[str, Any]) -> None:
    """A call that changed nothing: say, per selected step, why (its state)."""
    try:
        action: Action | None = Action(call)
    except ValueError:
        action = None
    rows = client.status(fields=["State"], **tags)
    if not rows:
        click.echo("no step matches " + (" ".join(f"{k}={v}" for k, v in tags.items())
                                         or "(no steps)"))
        return
    for row in rows[:10]:
        state = row["State"]
        reason = f"{row['n']} {row['Name']} is {state}"
        if state == State.RUNNING.value and call in (Call.SKIP, Call.BLOCK, Call.RERUN,
                                                     Call.PAUSE):
            reason += ": interrupt it first"
        elif action is not None:
            allowed = sorted(s.value for s in states_for(action))
            reason += f"; {call} applies to steps that are " + ", ".join(allowed)
        click.echo(reason)
    if len(rows) > 10:
        click.echo(f"and {len(rows) - 10} more")


def stranded_note(client: TrailClient, blocked: list[dict[str, Any]], dry_run: bool,
                  until: str = "unblocked") -> None:
    """Name the steps below blocked (or paused) ones that cannot run until those are
    unblocked (resumed)."""
    shape = client.graph()
    children: dict[int, list[int]] = {}
    for parent, child in shape["edges"]:
        children.setdefault(parent, []).append(child)
    names = {step["n"]: step["name"] for step in shape["steps"]}
    chosen = {step["n"] for step in blocked}
    below: set[int] = set()
    todo = list(chosen)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in below:
                below.add(child)
                todo.append(child)
    done = {row["n"] for row in client.status(fields=["State"])
            if row["State"] in ("Succeeded", "Skipped")}
    stranded = sorted(below - chosen - done)
    if not stranded:
        return
    listed = ", ".join(f"{n} {names[n]}" for n in stranded[:10])
    more = f" and {len(stranded) - 10} more" if len(stranded) > 10 else ""
    verb = "would wait" if dry_run else "wait"
    click.echo(f"{len(stranded)} step(s) below {verb} until these are {until} (the run "
               f"stays open for it): {listed}{more}")


def show(spec: CallSpec, result: Any, as_json: bool, dry_run: bool) -> None:
    """A call's result as JSON (what steps a mutating call concerned, and whether it was a
    dry run) or for a person."""
    data = result
    if spec.result is Result.STEPS:
        data = {"call": spec.name, "dry_run": dry_run, "steps": result}
    elif spec.result is Result.DONE:
        data = {"call": spec.name, "dry_run": dry_run, "done": result}
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        from trail.layer2.cli.display import call_result

        rich_console().print(call_result(spec, result, dry_run, spec.command_name, " --yes"))


add_commands(main, SPECS)


@main.command()
@SOCKET
@click.pass_context
def attach(ctx: click.Context, socket: str | None) -> None:
    """A Python REPL bound to a trail: `client`, and status(), pause(...), ... printed.

    Completion with Tab, history in ~/.trail_history.

    \b
    Example:
      trail attach
      >>> status(states=["Paused due to failure"])
    """
    import code

    with speaking(ctx.obj["debug"]):
        client = connect(ctx, socket)
        info = client.info()
    namespace: dict[str, Any] = {"client": client}
    from trail.layer2.cli.repl import bind_calls  # only here: rich's pretty printing

    bind_calls(client, namespace)
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
    from trail.layer2.diagram import definition_dot, live_dot, render  # graphviz: only here
    from trail.layer2.runbook import load_runbook

    with speaking(ctx.obj["debug"]):
        if runbook:
            graph = definition_dot(load_runbook(runbook).trail)
        else:
            graph = live_dot(connect(ctx, socket))
        click.echo(str(render(graph, out)))


