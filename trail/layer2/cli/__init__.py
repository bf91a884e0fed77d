"""The terminal face of trail: the ``trail`` command, the live view, the REPL, and the
commands of the web page, schedules and YAML runbooks (each in its own module, loaded when
its command is named: see LAZY_COMMANDS in commands.py)."""

from trail.layer2.cli.commands import main

__all__ = ["main"]
