"""``trail validate`` and ``trail schema``: check a runbook without running it, and print
the JSON Schema of YAML runbooks for editors."""

from __future__ import annotations

import json

import click

from trail.core.dag import make_trail_graph
from trail.errors import RunbookError, YamlRunbookError
from trail.layer2.cli.commands import EXIT_ERROR, Failure, main
from trail.layer2.runbook import load_runbook


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The verdict as JSON.")
def validate(runbook: str, as_json: bool) -> None:
    """Check a runbook (YAML or Python) without running it: every problem, with its line.

    Exit code 0 when it is sound, 2 otherwise.

    \b
    Example:
      trail validate deploy.yaml
    """
    try:
        book = load_runbook(runbook)
    except YamlRunbookError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "problems": [
                {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
                for p in exc.problems]}))
        else:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        raise SystemExit(EXIT_ERROR) from exc
    except RunbookError as exc:
        raise Failure(str(exc)) from exc
    steps = list(make_trail_graph(book.trail).nodes)
    if as_json:
        click.echo(json.dumps({"ok": True, "name": book.name,
                               "steps": [step.name for step in steps]}))
    else:
        click.echo(f"{runbook}: ok, trail {book.name!r} of {len(steps)} steps: "
                   + ", ".join(step.name for step in steps))


@main.command()
def schema() -> None:
    """Print the JSON Schema of YAML runbooks (for an editor's YAML language server).

    \b
    Example:
      trail schema > ~/.config/trail/runbook.schema.json
    """
    from trail.layer2.yamlbook import SCHEMA

    click.echo(json.dumps(SCHEMA, indent=2))
