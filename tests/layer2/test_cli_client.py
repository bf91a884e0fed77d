"""trail.helpers.cli_client: AutoTrail's argparse client, generated from the call table."""

from __future__ import annotations

from argparse import ArgumentParser

import pytest

import trail.helpers.cli_client as cli_client
from tests.support import names, wait_states, wait_until
from trail import Step
from trail.helpers.cli_client import (
    CLIArgs,
    cli_args_for_tag_keys_and_values,
    extract_args_and_kwargs,
    get_tag_keys_and_values,
    get_tags_from_namespace,
    make_api_call,
    setup_cli_args_for_trail_client,
)
from trail.layer1.calls import SPECS

AUTOTRAILS_NAMES = {
    "extract_args_and_kwargs", "CLIArgs", "MESSAGE_TYPE_CONVERSION_MAPPING",
    "METHODS_CLI_SWITCH_MAPPING", "PARAMETER_EXTRACTOR_MAPPING", "get_tag_keys_and_values",
    "cli_args_for_tag_keys_and_values", "get_tags_from_namespace", "substitute_cli_switches",
    "add_arguments_to_parser", "setup_cli_args_for_trail_client", "make_api_call"}


def test_it_has_autotrails_names_and_every_call_of_the_table():
    assert AUTOTRAILS_NAMES <= set(dir(cli_client))
    every = {spec.name for spec in SPECS}
    assert set(cli_client.METHODS_CLI_SWITCH_MAPPING) == every
    assert set(cli_client.PARAMETER_EXTRACTOR_MAPPING) == every


def parse(client, *argv: str):
    seen = get_tag_keys_and_values(client.list())
    parser = ArgumentParser()
    setup_cli_args_for_trail_client(parser, {
        CLIArgs.DRY_RUN: [extract_args_and_kwargs("--submit", dest="dry_run",
                                                  action="store_false")],
        CLIArgs.TAGS: list(cli_args_for_tag_keys_and_values(seen)),
    })
    arguments = parser.parse_args(argv)
    return make_api_call(arguments, get_tags_from_namespace(seen, arguments), client)


def test_calls_made_from_a_command_line(serve):
    client = serve(Step(lambda e, c: e.input("go?"), name="ask", tier="db")
                   >> Step(lambda e, c: 1, name="after", urgent=True))
    assert get_tag_keys_and_values(client.list()) == {
        "name": ["ask", "after"], "tier": ["db"], "n": [0, 1], "urgent": [True]}
    assert names(parse(client, "pause", "--urgent", "True")) == ["after"]
    assert client.status(fields=["State"], n=1)[0]["State"] == "Ready"  # a dry run
    assert names(parse(client, "pause", "--n", "1", "--submit")) == ["after"]
    assert names(parse(client, "start")) == ["ask"]  # start acts, as in AutoTrail
    rows = parse(client, "status", "--field", "State", "--state", "To Pause")
    assert rows == [{"n": 1, "Name": "after", "State": "To Pause"}]
    wait_until(lambda: parse(client, "steps_waiting_for_user_input", "--tier", "db"),
               "the question")
    assert names(parse(client, "send_message_to_steps", "--message", "42", "--type", "int",
                       "--name", "ask", "--submit")) == ["ask"]
    wait_states(client, {"ask": "Succeeded"})
    assert client.status(fields=["Return value"], name="ask")[0]["Return value"] == 42
    assert names(parse(client, "next_step", "--step-count", "1", "--submit")) == ["after"]


def test_a_tag_value_no_step_has_is_refused(serve):
    client = serve(Step(lambda e, c: 1, name="one"))
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        parse(client, "pause", "--name", "two")
