"""``trail schedule add|ls|rm|pause|resume|run`` and ``trail scheduler``.

Schedules live in SQLite beside the journal (``trail.layer2.schedule``); these commands
edit them and read their firings, and ``trail scheduler`` is the process that fires them.
Errors are one line on stderr, exit code 2, as for every ``trail`` command.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Table

from trail.layer1.journal import default_journal_path
from trail.layer2.cli.commands import JSON, Failure, speaking
from trail.layer2.schedule import (
    Firing,
    Schedule,
    Scheduler,
    SchedulerLock,
    ScheduleStore,
    SubprocessLauncher,
    Timing,
    store_path,
)
from trail.layer2.schedule.store import CATCH_UP, OVERLAP
from trail.layer2.schedule.timing import parse_every

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
JOURNAL = click.option("--journal", metavar="PATH",
                       help="The journal whose schedules these are "
                            "(default: $XDG_STATE_HOME/trail/journal.sqlite3).")


def journal_path(journal: str | None) -> Path:
    return Path(journal).absolute() if journal else default_journal_path()


def open_store(journal: str | None) -> ScheduleStore:
    return ScheduleStore(store_path(journal_path(journal)))


def run_takes_notify(group: click.Group) -> bool:
    """Whether ``trail run`` has a ``--notify`` option to pass notification URLs to."""
    command = group.commands.get("run")
    return command is not None and any("--notify" in getattr(param, "opts", ())
                                       for param in command.params)


def add_schedule_commands(group: click.Group) -> None:
    """Register ``schedule`` and ``scheduler`` on the ``trail`` group."""
    group.add_command(schedule)
    group.add_command(scheduler)


@click.group()
def schedule() -> None:
    """Runbooks that run themselves: add, list, pause, resume, remove, fire now.

    \b
    Examples:
      trail schedule add nightly backup.py --cron "30 2 * * *" --tz Europe/Berlin
      trail schedule add probe probe.py --every 5m --overlap skip
      trail schedule ls
      trail scheduler          # the process that fires them (one per journal)
    """


@schedule.command()
@click.argument("name")
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("--cron", metavar="EXPR", help='A cron expression, e.g. "30 2 * * *".')
@click.option("--every", metavar="DURATION", help="An interval: 30s, 5m, 1h, 1d.")
@click.option("--tz", default="UTC", show_default=True, metavar="ZONE",
              help="The zone the cron expression is read in, e.g. Europe/Berlin.")
@click.option("--overlap", type=click.Choice(OVERLAP), default="skip", show_default=True,
              help="When the previous run has not ended: skip this firing, queue it "
                   "(at most one waits), or allow two at once.")
@click.option("--catch-up", "catch_up", type=click.Choice(CATCH_UP), default="latest",
              show_default=True,
              help="Firings missed while the scheduler was down: none, the latest once, all.")
@click.option("--answer", "answers", multiple=True, metavar="STEP=REPLY",
              help="Pre-answer that step's question (repeatable).")
@click.option("--notify", "notify", multiple=True, metavar="URL",
              help="Notify this URL about each run (repeatable).")
@click.option("--paused", is_flag=True, help="Add it paused (resume it to start firing).")
@JOURNAL
@JSON
@click.pass_context
def add(ctx: click.Context, name: str, runbook: str, cron: str | None, every: str | None,
        tz: str, overlap: str, catch_up: str, answers: tuple[str, ...], notify: tuple[str, ...],
        paused: bool, journal: str | None, as_json: bool) -> None:
    """Add a schedule NAME that fires RUNBOOK by --cron or --every.

    Each firing is an ordinary `trail run RUNBOOK --plain` on this journal.

    \b
    Examples:
      trail schedule add nightly backup.py --cron "30 2 * * *" --tz Europe/Berlin
      trail schedule add probe probe.py --every 5m --answer confirm=yes
    """
    with speaking(ctx.obj["debug"]):
        if not NAME.match(name):
            raise Failure(f"schedule name {name!r}: use letters, digits, '_', '.', '-'")
        book = Path(runbook)
        if not book.is_file():
            raise Failure(f"no runbook at {runbook}")
        for answer in answers:
            if "=" not in answer or answer.startswith("="):
                raise Failure(f"--answer takes STEP=REPLY, not {answer!r}")
        timing = Timing(cron=cron, every=parse_every(every) if every else None, tz=tz)
        store = open_store(journal)
        added = store.add(Schedule(name, str(book.absolute()), timing, overlap, catch_up,
                                   list(answers), list(notify), paused))
        if as_json:
            click.echo(json.dumps(schedule_json(store, added), indent=2))
            return
        click.echo(f"schedule {name}: {runbook} {timing.describe()}, next "
                   f"{_when(added.next_at, timing.tz)}" + (" (paused)" if paused else ""))
        if notify and not run_takes_notify(ctx.find_root().command):  # type: ignore[arg-type]
            click.echo("note: `trail run` has no --notify yet; the URLs are kept and passed "
                       "to runs once it has")
        if SchedulerLock(journal_path(journal)).holder() is None:
            click.echo("note: no `trail scheduler` runs for this journal; start one to fire it")


@schedule.command(name="ls")
@click.argument("name", required=False)
@click.option("--firings", default=20, show_default=True,
              help="With NAME: how many of its latest firings to show.")
@JOURNAL
@JSON
@click.pass_context
def list_schedules(ctx: click.Context, name: str | None, firings: int, journal: str | None,
                   as_json: bool) -> None:
    """The schedules: when next, last run and outcome, paused, skipped firings and why.

    With NAME, that schedule and its latest firings.

    \b
    Examples:
      trail schedule ls
      trail schedule ls nightly --json
    """
    with speaking(ctx.obj["debug"]):
        store = open_store(journal)
        chosen = [store.get(name)] if name else store.schedules()
        rows = [schedule_json(store, s, firings if name else 20) for s in chosen]
        if as_json:
            click.echo(json.dumps(rows[0] if name else rows, indent=2))
            return
        console = Console()
        holder = SchedulerLock(journal_path(journal)).holder()
        if not rows:
            console.print("no schedules")
        else:
            console.print(schedules_table(rows))
        if name:
            console.print(firings_table(store.firings(name, limit=firings), chosen[0].timing.tz))
        console.print(f"scheduler: pid {holder}" if holder else
                      "scheduler: none runs for this journal (start `trail scheduler`)",
                      markup=False, highlight=False)


@schedule.command(name="rm")
@click.argument("name")
@JOURNAL
@JSON
@click.pass_context
def remove(ctx: click.Context, name: str, journal: str | None, as_json: bool) -> None:
    """Remove a schedule (its runs and the record of its firings stay).

    \b
    Example:
      trail schedule rm nightly
    """
    with speaking(ctx.obj["debug"]):
        open_store(journal).remove(name)
        _said(as_json, {"removed": name}, f"schedule {name} removed")


@schedule.command()
@click.argument("name")
@JOURNAL
@JSON
@click.pass_context
def pause(ctx: click.Context, name: str, journal: str | None, as_json: bool) -> None:
    """Stop firing a schedule until it is resumed (a running run goes on).

    \b
    Example:
      trail schedule pause nightly
    """
    with speaking(ctx.obj["debug"]):
        store = open_store(journal)
        changed = store.set_paused(name, True)
        _said(as_json, schedule_json(store, changed), f"schedule {name} paused")


@schedule.command()
@click.argument("name")
@JOURNAL
@JSON
@click.pass_context
def resume(ctx: click.Context, name: str, journal: str | None, as_json: bool) -> None:
    """Fire a paused schedule again, from its next time after now (nothing is caught up).

    \b
    Example:
      trail schedule resume nightly
    """
    with speaking(ctx.obj["debug"]):
        store = open_store(journal)
        changed = store.set_paused(name, False)
        _said(as_json, schedule_json(store, changed),
              f"schedule {name} resumed, next {_when(changed.next_at, changed.timing.tz)}")


@schedule.command(name="run")
@click.argument("name")
@JOURNAL
@JSON
@click.pass_context
def run_now(ctx: click.Context, name: str, journal: str | None, as_json: bool) -> None:
    """Fire a schedule now (the scheduler starts it; its overlap policy applies).

    \b
    Example:
      trail schedule run nightly
    """
    with speaking(ctx.obj["debug"]):
        store = open_store(journal)
        firing = store.request(name)
        holder = SchedulerLock(journal_path(journal)).holder()
        text = (f"firing {firing} of {name} requested; the scheduler (pid {holder}) starts it "
                f"within a second" if holder else
                f"firing {firing} of {name} requested; no scheduler runs for this journal: it "
                f"fires when `trail scheduler` starts")
        _said(as_json, {"schedule": name, "firing": firing, "scheduler_pid": holder}, text)


@click.command(name="scheduler")
@JOURNAL
@click.pass_context
def scheduler(ctx: click.Context, journal: str | None) -> None:
    """Fire the schedules of a journal, until stopped (foreground; one per journal).

    Runs it started go on when it stops; the next scheduler watches them. Logs to stderr.

    \b
    Example:
      trail scheduler --journal ~/.local/state/trail/journal.sqlite3
    """
    with speaking(ctx.obj["debug"]):
        path = journal_path(journal)
        lock = SchedulerLock(path)
        lock.acquire()
        if not ctx.obj["debug"]:
            logging.basicConfig(level=logging.INFO, force=True,
                                format="%(asctime)s %(name)s: %(message)s")
        store = ScheduleStore(store_path(path))
        notify = run_takes_notify(ctx.find_root().command)  # type: ignore[arg-type]
        if not notify and any(s.notify for s in store.schedules()):
            logging.getLogger(__name__).warning(
                "`trail run` has no --notify yet: notification URLs are kept, not passed")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(f"trail scheduler: pid {lock.holder()}, journal {path}, schedules "
                   f"{store.path}", err=True)
        try:
            Scheduler(store, path, SubprocessLauncher(path, notify)).serve(stop)
        finally:
            lock.release()
        click.echo("trail scheduler: stopped (runs it started go on)", err=True)


# --- showing ----------------------------------------------------------------------------

def schedule_json(store: ScheduleStore, s: Schedule, limit: int = 20) -> dict[str, Any]:
    """A schedule as ``ls --json`` shows it: settings, next firing, last run, skips."""
    last = store.last_run(s.name)
    count, skipped = store.skipped(s.name, limit)
    running = store.firings(s.name, ("running",))
    return {
        "name": s.name, "runbook": s.runbook, "cron": s.timing.cron, "every": s.timing.every,
        "tz": s.timing.tz, "overlap": s.overlap, "catch_up": s.catch_up,
        "answers": s.answers, "notify": s.notify, "paused": s.paused,
        "next_at": s.next_at, "next": _iso(s.next_at, s.timing.tz),
        "last_run": None if last is None else last.to_json(),
        "running": [f.to_json() for f in running],
        "queued": len(store.firings(s.name, ("queued", "requested"))),
        "skipped_count": count, "skipped": [f.to_json() for f in skipped],
    }


def schedules_table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("Name", "When", "Next", "Last run", "Policy", "Skipped"):
        table.add_column(column, overflow="fold")
    for row in rows:
        when = f"cron {row['cron']} {row['tz']}" if row["cron"] else \
            Timing(every=row["every"]).describe()
        last = row["last_run"]
        if last is None:
            last_text = "never"
        else:
            run = f"run {last['run_id']}" if last["run_id"] else f"firing {last['id']}"
            status = "running" if last["state"] == "running" else \
                (last["outcome"] or last["state"])
            last_text = f"{run}: {status}\n{_when(last['started'], row['tz'])}"
        skipped = str(row["skipped_count"])
        if row["skipped"]:
            skipped += f" (last: {row['skipped'][-1]['reason']})"
        next_text = "paused" if row["paused"] else _when(row["next_at"], row["tz"])
        table.add_row(row["name"], when, next_text, last_text,
                      f"overlap {row['overlap']}\ncatch-up {row['catch_up']}", skipped)
    return table


def firings_table(firings: list[Firing], tz: str) -> Table:
    table = Table(title="firings")
    for column in ("#", "Due", "Trigger", "State", "Run", "Outcome / reason"):
        table.add_column(column, overflow="fold")
    for f in firings:
        table.add_row(str(f.id), _when(f.due, tz), f.trigger, f.state,
                      "" if f.run_id is None else str(f.run_id),
                      f.outcome or f.reason or "")
    return table


def _iso(moment: float | None, tz: str) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, ZoneInfo(tz)).isoformat()


def _when(moment: float | None, tz: str) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _said(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)
