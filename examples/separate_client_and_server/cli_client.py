"""A command line for the trail that server.py serves, built from the trail's own tags.

    python examples/separate_client_and_server/cli_client.py --help
    python examples/separate_client_and_server/cli_client.py start
    python examples/separate_client_and_server/cli_client.py pause --foo bar           # dry run
    python examples/separate_client_and_server/cli_client.py pause --foo bar --submit
    python examples/separate_client_and_server/cli_client.py status --field State --n 6
"""

from __future__ import annotations

import os
import tempfile
from argparse import ArgumentParser

from trail import InteractiveTrail, TrailClient
from trail.helpers.cli_client import (
    CLIArgs,
    cli_args_for_tag_keys_and_values,
    extract_args_and_kwargs,
    get_tag_keys_and_values,
    get_tags_from_namespace,
    make_api_call,
    setup_cli_args_for_trail_client,
)

socket_file = os.environ.get("TRAIL_EXAMPLE_SOCKET") or os.path.join(
    tempfile.gettempdir(), "trail.example.server")
client = TrailClient(socket_file)
example = InteractiveTrail(client)
tags_seen = get_tag_keys_and_values(client.list())

switches = {
    CLIArgs.DRY_RUN: [extract_args_and_kwargs(
        "--submit", dest="dry_run", action="store_false",
        help="make the change (without it every call is a dry run)")],
    CLIArgs.TAGS: list(cli_args_for_tag_keys_and_values(tags_seen)),
}
parser = ArgumentParser(description="Steer the example trail.")
setup_cli_args_for_trail_client(parser, switches)
arguments = parser.parse_args()
make_api_call(arguments, get_tags_from_namespace(tags_seen, arguments), example)
