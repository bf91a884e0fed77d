"""The terminal face of trail: the ``trail`` command, the live view, the REPL."""

from trail.layer2.cli import yamlbook as _yamlbook  # noqa: F401  (adds validate and schema)
from trail.layer2.cli.commands import main

__all__ = ["main"]
