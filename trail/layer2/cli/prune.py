"""``trail prune``: forget old runs in the journal, and their step log files."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click

from trail.layer1.journal import Journal, default_journal_path, prune
from trail.layer1.steplogs import directory_for, remove_run_logs
from trail.layer2.cli.commands import JSON, Failure, main, speaking
from trail.layer2.cli.display import clock

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600s`` (a plain number: days) as seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if found is None:
        raise click.BadParameter(f"{text!r} is not an age: say 30d, 12h, 90m or 2w")
    return float(found.group(1)) * _UNITS[found.group(2) or "d"]


@main.command("prune")
@click.option("--older-than", "older", metavar="AGE", help="Forget runs started longer ago "
              "than this: 30d, 12h, 90m, 2w (a plain number: days).")
@click.option("--keep", type=click.IntRange(0, 2**62), metavar="N",
              help="Forget all but the newest N runs.")
@click.option("--journal", metavar="PATH",
              help="The journal file (default: $XDG_STATE_HOME/trail/journal.sqlite3).")
@click.option("--yes", "-y", is_flag=True, help="Do it (without: say what would go).")
@JSON
@click.pass_context
def prune_command(ctx: click.Context, older: str | None, keep: int | None, journal: str | None,
          yes: bool, as_json: bool) -> None:
    """Forget old runs: their steps, history and step log files (a dry run without --yes).

    A run still open (its server may be alive, or it waits to be taken up) and the latest
    run of each trail (`trail run --resume` takes it up) are always kept. Both options
    together forget only runs that both select.

    \b
    Examples:
      trail prune --older-than 30d
      trail prune --keep 200 --yes
    """
    with speaking(ctx.obj["debug"]):
        if older is None and keep is None:
            raise Failure("say which runs to forget: --older-than AGE, --keep N, or both")
        path = Path(journal) if journal else default_journal_path()
        if not path.exists():
            raise Failure(f"no journal at {path}")
        before = None if older is None else time.time() - age(older)
        book = Journal(path)
        try:
            runs = prune(book, before, keep, dry_run=not yes)
        finally:
            book.close()
        logs = 0
        if yes:
            steps = directory_for(path, "")
            logs = sum(remove_run_logs(steps, run["id"]) for run in runs)
        if as_json:
            click.echo(json.dumps({"dry_run": not yes, "runs": runs, "log_files": logs},
                                  indent=2))
            return
        for run in runs[:20]:
            click.echo(f"{run['id']:>6}  {clock(run['started'])}  {run['name']}  "
                       f"({run['outcome']})")
        if len(runs) > 20:
            click.echo(f"and {len(runs) - 20} more")
        if not runs:
            click.echo(f"no run to forget in {path}")
        elif yes:
            click.echo(f"forgot {len(runs)} run(s) and {logs} step log file(s) in {path}")
        else:
            click.echo(f"would forget {len(runs)} run(s) in {path}: run it again with --yes")
