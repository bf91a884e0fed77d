"""The terminal face of trail: the ``trail`` command, the live view, the REPL."""

from trail.layer2.cli import yamlbook as _yamlbook  # noqa: F401  (adds validate and schema)
from trail.layer2.cli.commands import main
from trail.layer2.cli.schedule import add_schedule_commands

add_schedule_commands(main)

__all__ = ["main"]
