"""The terminal face of trail: the ``trail`` command, the live view, the REPL, and the
commands of the web page, schedules and YAML runbooks (each in its own module)."""

from trail.layer2.cli import logs as _logs  # noqa: F401  (adds logs)
from trail.layer2.cli import yamlbook as _yamlbook  # noqa: F401  (adds validate and schema)
from trail.layer2.cli.commands import main
from trail.layer2.cli.schedule import add_schedule_commands
from trail.layer2.cli.web import web

add_schedule_commands(main)
main.add_command(web)

__all__ = ["main"]
