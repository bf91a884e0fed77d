"""``trail validate``, ``trail schema`` and ``trail export --yaml``: check a runbook
without running it, print the JSON Schema of YAML runbooks for editors, write a Python
runbook as YAML."""

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


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("--yaml", "as_yaml", is_flag=True, required=True,
              help="Write YAML (the one format for now).")
@click.option("-o", "--output", "out", metavar="FILE", help="Write here, not to stdout.")
@click.pass_context
def export(ctx: click.Context, runbook: str, as_yaml: bool, out: str | None) -> None:
    """Write a Python runbook as a YAML runbook, when all its steps are expressible.

    Otherwise names each step that is not, and why (exit code 2), and writes nothing.

    \b
    Example:
      trail export --yaml examples/runbook.py -o runbook.yaml
    """
    from trail.layer2.yamlbook.export import export_yaml

    try:
        text, refusals = export_yaml(load_runbook(runbook))
    except RunbookError as exc:
        raise Failure(str(exc)) from exc
    if refusals:
        for refusal in refusals:
            click.echo(f"{runbook}: not expressible in YAML: {refusal}", err=True)
        raise SystemExit(EXIT_ERROR)
    if out:
        with open(out, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        click.echo(text, nl=False)
