"""``python -m trail``: the ``trail`` command."""

from trail.layer2.cli import main

main(prog_name="trail")
