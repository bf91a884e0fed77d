"""The terminal face of trail: the ``trail`` command, the live view, the REPL."""

from trail.layer2.cli.commands import main
from trail.layer2.cli.web import web

main.add_command(web)

__all__ = ["main"]
