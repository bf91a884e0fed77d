"""The table of calls: the handlers agree with it, every face offers its calls with the same
arguments and defaults, a call added to a table reaches every face, and the client works
the same over both transports."""

from __future__ import annotations

import inspect
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from trail import Step
from trail.errors import TrailClientError
from trail.layer1.api import HANDLERS, check_handlers
from trail.layer1.calls import CALLS, SPECS, Argument, Call, CallSpec, Result, anything, count
from trail.layer1.transport import InProcessTransport
from trail.layer1.wire import Reply
from trail.layer2.cli import main
from trail.layer2.cli.commands import add_commands
from trail.layer2.cli.liveview import HELP, Steering
from trail.layer2.cli.repl import InteractiveTrail, add_repl_methods
from trail.layer2.client import TrailClient, add_call_methods
from trail.testing import InProcessTrail

AUTOTRAIL_SIGNATURES = {
    "info": "()",
    "graph": "()",
    "start": "(dry_run=False, **tags)",
    "stop": "(dry_run=True, **tags)",
    "shutdown": "(dry_run=True)",
    "list": "(**tags)",
    "status": "(fields=None, states=None, offset=0, limit=None, **tags)",
    "steps_waiting_for_user_input": "(**tags)",
    "send_message_to_steps": "(message, dry_run=True, **tags)",
    "next_step": "(step_count=1, dry_run=True)",
    **{name: "(dry_run=True, **tags)" for name in (
        "pause", "pause_branch", "interrupt", "resume", "resume_branch", "skip", "unskip",
        "block", "unblock", "rerun", "set_pause_on_fail", "unset_pause_on_fail")},
}
COMMANDS = {
    "start", "stop", "pause", "resume", "skip", "unskip", "block", "unblock", "interrupt",
    "rerun", "pause-branch", "resume-branch", "set-pause-on-fail", "unset-pause-on-fail",
    "next", "send", "shutdown", "status", "list",
}
WRITTEN_COMMANDS = {"run", "watch", "history", "ls", "attach", "dot",
                    "validate", "schema", "export",  # cli/yamlbook.py
                    "schedule", "scheduler",  # cli/schedule.py
                    "notify-test", "web",
                    "logs",  # cli/logs.py
                    "prune"}  # cli/prune.py


def test_the_table_names_every_call_once_and_every_call_has_one_handler():
    assert [spec.name for spec in SPECS] == [call.value for call in Call]
    assert set(HANDLERS) == set(CALLS)
    with pytest.raises(TypeError, match=r"no handler for \['pause'\]; no call for none"):
        check_handlers({c: h for c, h in HANDLERS.items() if c is not Call.PAUSE}, CALLS)
    with pytest.raises(TypeError, match=r"no handler for none; no call for \['pause'\]"):
        check_handlers(HANDLERS, [name for name in CALLS if name != "pause"])


def test_the_client_has_autotrails_signatures_from_the_table():
    client = TrailClient("/nowhere/x.sock")
    for spec in SPECS:
        method = getattr(client, spec.name)
        assert str(inspect.signature(method)) == AUTOTRAIL_SIGNATURES[spec.name]
        assert method.__name__ == spec.name
        assert spec.summary in method.__doc__ and spec.example in method.__doc__


def test_every_face_offers_its_calls_with_the_tables_arguments():
    assert set(main.list_commands(click.Context(main))) == COMMANDS | WRITTEN_COMMANDS
    for spec in SPECS:
        shape = str(inspect.signature(getattr(TrailClient, spec.name)))
        assert str(inspect.signature(getattr(InteractiveTrail, spec.name))) == shape
        assert spec.name in dir(InteractiveTrail(TrailClient("/nowhere/x.sock")))
        if not spec.cli:
            assert spec.command_name not in main.commands
            continue
        command = main.commands[spec.command_name]
        params = {param.name: param for param in command.params}
        assert set(params) == ({"socket", "as_json"} | {a.name for a in spec.arguments}
                               | ({"tags"} if spec.selects else set())
                               | ({"yes"} if spec.mutating else set()))
        for argument in spec.arguments:
            if not argument.required and not argument.option:
                assert params[argument.name].default == argument.default
        assert spec.summary in command.help and spec.example in command.help
    steering = Steering(TrailClient("/nowhere/x.sock"))
    usage = [words.split()[0] for words in steering.help().split(" · ")]
    keys = re.split(r"[ (;]", HELP)
    for spec in SPECS:
        offered = spec.mutating and spec.result is Result.STEPS
        assert (steering.verbs.get(spec.name) is spec) == offered
        assert (spec.command_name in usage) == offered
        assert (spec.command_name in keys) == offered


def test_the_commands_are_the_ones_users_know():
    runner = CliRunner()
    assert "Usage: main next [OPTIONS] [COUNT]" in runner.invoke(main, ["next", "-h"]).output
    send = runner.invoke(main, ["send", "-h"]).output
    assert "send [OPTIONS] MESSAGE [TAG=VALUE]..." in send and "read as JSON" in send
    status = runner.invoke(main, ["status", "-h"]).output
    assert "--state" in status and "--field" in status and "--yes" not in status


# --- a call that is in no table but this test's reaches every face -----------------------

ECHO = CallSpec("echo", "Say WORD back, LOUD times.", "trail echo hi 2 name=a --yes",
                arguments=(Argument("word", anything, cli="WORD"),
                           Argument("loud", count, 1, cli="LOUD", from_text=int)),
                selects=True, mutating=True)


class EchoClient(TrailClient):
    """A client with one more call."""


class EchoTrail(InteractiveTrail):
    """A REPL wrapper with one more call."""


add_call_methods(EchoClient, [ECHO])
add_repl_methods(EchoTrail, [ECHO])


def echo_server(requests: list[dict[str, Any]]) -> InProcessTransport:
    """A server of the one call: it answers the step it was told to, and records what came."""

    def handle(body: bytes) -> bytes:
        request = json.loads(body)
        requests.append(request)
        steps = [{"n": 0, "name": request["args"]["tags"].get("name", "?")}]
        return Reply(request["id"], True, steps).to_json()

    return InProcessTransport(handle)


def test_a_call_added_to_a_table_reaches_the_client_the_repl_the_cli_and_the_view():
    requests: list[dict[str, Any]] = []
    client = EchoClient("echo-server", transport=echo_server(requests))
    assert str(inspect.signature(client.echo)) == "(word, loud=1, dry_run=True, **tags)"
    assert client.echo("hi", name="a") == [{"n": 0, "name": "a"}]
    assert requests[-1]["call"] == "echo"
    assert requests[-1]["args"] == {"word": "hi", "loud": 1, "dry_run": True,
                                    "tags": {"name": "a"}}

    out = io.StringIO()
    EchoTrail(client, Console(file=out, color_system=None)).echo("hi", 3, dry_run=False)
    assert "echo affected 1 step(s)" in out.getvalue()
    assert requests[-1]["args"]["loud"] == 3 and requests[-1]["args"]["dry_run"] is False

    assert Steering(client, [ECHO]).command("echo a 2") == "echo: 0 a"
    assert requests[-1]["args"] == {"tags": {"name": "a"}, "word": "2", "dry_run": False}
    assert "echo N-or-name WORD [LOUD]" in Steering(client, [ECHO]).help()

    group = click.Group("trail")
    add_commands(group, [ECHO])
    shown = CliRunner().invoke(group, ["echo", "--help"]).output
    assert "echo [OPTIONS] WORD [LOUD] [TAG=VALUE]..." in shown
    assert "Say WORD back" in shown and "trail echo hi 2 name=a --yes" in shown
    assert "--yes" in shown


def test_a_table_cannot_shadow_what_a_client_already_has():
    with pytest.raises(TypeError, match="already has an attribute 'close'"):
        add_call_methods(EchoClient, [CallSpec("close", "No.", "trail close")])


# --- the client over both transports --------------------------------------------------------

@pytest.fixture(params=["zmq", "in-process"])
def client(request: pytest.FixtureRequest, serve: Any) -> Iterator[TrailClient]:
    """A client of a two-step trail, through a real server's socket or in this thread
    straight to the run's handlers (trail.testing)."""
    a, b = Step(lambda e, c: 1, name="a", tier="db"), Step(lambda e, c: 2, name="b")
    if request.param == "zmq":
        yield serve(a >> b, journal=False)
        return
    with InProcessTrail(a >> b) as trail:
        yield trail.client


def test_the_client_works_the_same_over_every_transport(client):
    assert [tags["name"] for tags in client.list()] == ["a", "b"]
    assert client.list(tier="db") == [{"name": "a", "tier": "db", "n": 0}]
    assert client.pause(name="b") == [{"n": 1, "name": "b"}]
    assert client.status(fields=["State"]) == [{"n": 0, "Name": "a", "State": "Ready"},
                                               {"n": 1, "Name": "b", "State": "Ready"}]
    assert client.pause(name="b", dry_run=False) == [{"n": 1, "name": "b"}]
    assert client.status(fields=["State"], name="b")[0]["State"] != "Ready"
    assert client.next_step(step_count=0) == []  # (how far b got depends on a loop)
    assert client.graph()["edges"] == [[0, 1]]
    with pytest.raises(TrailClientError, match="'Colour' in 'fields'"):
        client.status(fields=["Colour"])
    with pytest.raises(TrailClientError, match="unknown call 'explode'"):
        client.call("explode")
    with pytest.raises(TypeError, match="message"):
        client.send_message_to_steps()


@pytest.fixture(params=["zmq", "in-process"])
def five(request: pytest.FixtureRequest, serve: Any) -> Iterator[TrailClient]:
    """A client of a five-step trail (s0 .. s4, s1 and s3 tagged odd), Ready."""
    steps = [Step(lambda e, c: None, name=f"s{i}", **({"odd": True} if i % 2 else {}))
             for i in range(5)]
    definition = [(steps[0], step) for step in steps[1:]]
    if request.param == "zmq":
        yield serve(definition, journal=False)
        return
    with InProcessTrail(definition) as trail:
        yield trail.client


def test_status_pages_through_the_steps_by_n(five):
    """A view of a big trail reads its status a page at a time: offset and limit count the
    steps selected (by tags and states), in n order; without them every row comes."""
    names = [row["Name"] for row in five.status()]
    assert names == ["s0", "s1", "s2", "s3", "s4"]
    pages = [[row["Name"] for row in five.status(offset=offset, limit=2)]
             for offset in (0, 2, 4, 6)]
    assert pages == [["s0", "s1"], ["s2", "s3"], ["s4"], []]
    assert [row["n"] for row in five.status(offset=3)] == [3, 4]
    assert five.status(limit=0) == []
    assert [row["Name"] for row in five.status(limit=1, odd=True)] == ["s1"]
    assert [row["Name"] for row in five.status(offset=1, odd=True)] == ["s3"]
    assert [row["Name"] for row in five.status(states=["Ready"], offset=4, limit=9)] == ["s4"]
    assert five.status(states=["Running"], limit=1) == []
    assert five.status(fields=["State"], offset=1, limit=1) == [
        {"n": 1, "Name": "s1", "State": "Ready"}]


@pytest.mark.parametrize("args, message", [
    ({"offset": -1}, "argument 'offset' must be a whole number >= 0, not -1"),
    ({"offset": "2"}, "argument 'offset' must be a whole number >= 0, not '2'"),
    ({"offset": None}, "argument 'offset' must be a whole number >= 0, not None"),
    ({"limit": -5}, "argument 'limit' must be a whole number >= 0, not -5"),
    ({"limit": 1.5}, "argument 'limit' must be a whole number >= 0, not 1.5"),
    ({"limit": True}, "argument 'limit' must be a whole number >= 0, not True"),
])
def test_a_bad_page_is_refused_saying_which_argument(five, args, message):
    with pytest.raises(TrailClientError, match=re.escape(message)):
        five.status(**args)
    assert len(five.status()) == 5  # and the server goes on serving
