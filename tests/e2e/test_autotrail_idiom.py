"""Runbooks written in AutoTrail's idiom give AutoTrail's results: free-form tags (some of
them trail's option names), selection by ``n``, callable objects as actions, AutoTrail's
REPL (``interactive(globals())``, driven in a real terminal) and InteractiveTrail's
keyword arguments."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import Tmux, names, require, states, wait_states, wait_until
from trail import (
    CycleError,
    DefinitionError,
    InteractiveTrail,
    MatchTrailsException,
    Step,
    TrailClient,
    TrailServer,
    write_trail_definition_as_dot,
)

ROOT = Path(__file__).parents[2]


def noop(trail_env, context):
    return "done"


def test_tags_that_are_option_names_still_select_their_steps(serve):
    urgent = Step(noop, name="urgent", priority="high")
    careful = Step(noop, name="careful", retries=3, pause_on_fail=False)
    guard = Step(lambda e, c: True, name="guard", conditional=True)
    slow = Step(noop, name="slow", timeout="5m")
    client = serve([(urgent, careful), (careful, guard), (guard, slow)])
    assert names(client.list(priority="high")) == ["urgent"]
    assert names(client.list(retries=3)) == ["careful"]
    assert names(client.list(pause_on_fail=False)) == ["careful"]
    assert names(client.list(conditional=True)) == ["guard"]
    assert names(client.list(timeout="5m")) == ["slow"]
    assert client.list(name="slow")[0] == {"name": "slow", "n": 3, "timeout": "5m"}
    # ... and trail reads them: 'high' is a priority above the default, '5m' five minutes.
    assert urgent.priority > Step(noop).priority
    assert slow.timeout == 300
    assert careful.retries == 3 and careful.pause_on_fail is False
    client.start()
    wait_states(client, dict.fromkeys(["urgent", "careful", "guard", "slow"], "Succeeded"))


@pytest.mark.parametrize("option, value, says", [
    ("executor", "ops-team", "executor='ops-team' is not an executor"),
    ("timeout", "soon", "timeout='soon' is not a positive duration"),
    ("priority", "whenever", "priority='whenever' is not a number"),
    ("retries", "many", "retries='many' is not a whole number"),
    ("pause_on_fail", "maybe", "pause_on_fail='maybe' is not true or false"),
])
def test_a_tag_trail_cannot_read_as_its_option_is_refused_naming_it(option, value, says):
    with pytest.raises(DefinitionError, match=says):
        Step(noop, **{option: value})


@pytest.mark.parametrize("written, seconds", [
    ("5m", 300), ("90s", 90), ("1h30m", 5400), ("250ms", 0.25), ("45", 45), (2.5, 2.5)])
def test_durations_are_read_as_written(written, seconds):
    assert Step(noop, timeout=written).timeout == seconds
    assert Step(noop, retry_delay=written).retry_delay == seconds


def diamond_as_autotrail_writes_it(log: Path):
    def appender(name):
        def action(trail_env, context):
            with open(log, "a") as out:
                out.write(name + "\n")
        return action

    a, b, c, d, e, f, g = (Step(appender(x), name=x) for x in "abcdefg")
    return [(a, b), (a, e), (b, c), (c, d), (d, g), (e, f), (f, g)]


def test_n_names_the_step_autotrail_numbers(serve, tmp_path):
    client = serve(diamond_as_autotrail_writes_it(tmp_path / "log"))
    assert [(t["n"], t["name"]) for t in client.list()] == list(enumerate("abecfdg"))
    assert names(client.skip(n=5, dry_run=False)) == ["d"]  # AutoTrail's step 5


class Act:
    """A callable object without __name__: AutoTrail names its steps str(obj)."""

    def __init__(self, host: str) -> None:
        self.host = host

    def __call__(self, trail_env, context):
        return self.host

    def __str__(self) -> str:
        return f"act on {self.host}"


def test_a_callable_object_is_named_by_its_str(serve):
    client = serve(Step(Act("web1")) >> Step(Act("web2")))
    assert names(client.list()) == ["act on web1", "act on web2"]
    assert names(client.list(name="act on web2")) == ["act on web2"]


def test_interactive_trail_takes_autotrails_keyword_arguments(serve):
    client = serve(Step(noop, name="one") >> Step(noop, name="two", foo="bar"))
    out, err, seen = io.StringIO(), io.StringIO(), []

    def printer(kind):
        return lambda *args: seen.append((kind, *args))

    trail = InteractiveTrail(client, stdout=out, stderr=err,
                             status_printer=printer("status"),
                             affected_steps_printer=printer("affected"),
                             step_list_printer=printer("list"),
                             error_printer=printer("error"),
                             no_result_printer=printer("none"),
                             generic_printer=printer("generic"))
    trail.pause(foo="bar")
    trail.list(foo="bar")
    trail.status(name="one", fields=["State"])
    trail.status(fields=["Colour"])
    trail.list(name="nothing")
    trail.info()
    assert seen[0] == ("affected", "pause", [{"n": 1, "name": "two"}], True, out)
    assert seen[1] == ("list", [{"n": 1, "name": "two", "foo": "bar"}], out)
    assert seen[2] == ("status", [{"n": 0, "Name": "one", "State": "Ready"}], out)
    assert seen[3][:2] == ("error", "status") and "Colour" in seen[3][2] and seen[3][3] is err
    assert seen[4] == ("none", "list", err)
    assert seen[5][0:2] == ("generic", "info") and seen[5][3] is out
    # Without printers, trail's own display goes to the streams given.
    plain = InteractiveTrail(client, stdout=out, stderr=err)
    plain.pause(foo="bar")
    plain.status(fields=["Colour"])
    assert "pause would affect 1 step(s)" in out.getvalue()
    assert "Error in status" in err.getvalue()


def test_autotrails_interactive_example_in_a_terminal(tmp_path):
    """``interactive(globals(), prompt=...)``: a REPL with the script's names, in tmux."""
    command = (f"cd {ROOT} && env PYTHONPATH={ROOT} XDG_STATE_HOME={tmp_path} "
               f"{sys.executable} examples/interactive_trail.py")
    terminal = Tmux(command)
    try:
        terminal.wait_for("Example Trail> ")
        terminal.keys("example.list(foo='bar')", "Enter")
        terminal.wait_for("add_6")
        terminal.keys("example.start()", "Enter")
        terminal.wait_for("start affected 7 step(s)")
        terminal.keys("context.seed + 1", "Enter")  # the script's own names are there
        terminal.wait_for("11")
        terminal.keys("status(name='add_7', fields=['State'])", "Enter")  # the calls too
        terminal.wait_for("Name")
        terminal.keys("import time; time.sleep(6)", "Enter")
        terminal.keys("status(fields=['State', 'Return value'])", "Enter")
        screen = terminal.wait_for("made 17")
        assert "Succeeded" in screen
        # Ctrl-D only once the prompt is back: an EOF typed before readline reads is lost.
        wait_until(lambda: terminal.screen().rstrip().endswith("Example Trail>"), "the prompt")
        terminal.keys("C-d")
        screen = terminal.wait_for("EXIT=")
        assert "EXIT=0" in screen and "The server is shutting down." in screen
    finally:
        terminal.close()


def test_the_dag_file_is_written_by_default_where_autotrail_writes_it(tmp_path):
    a, b = Step(noop, name="a"), Step(noop, name="b")
    server = TrailServer([(a, b)], journal=False)
    path = Path(server.dag_file)
    assert path.parent == Path(tempfile.gettempdir()) and path.name.startswith("trail.")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["b"] == {
        "State": "Ready", "Return value": "None", "Prompt messages": [],
        "Output messages": [], "Input messages": [], "parents": ["a"]}
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=10)
    client.start()
    wait_states(client, {"a": "Succeeded", "b": "Succeeded"})
    wait_until(lambda: json.loads(path.read_text())["b"]["State"] == "Succeeded",
               "the DAG file to catch up")
    # It serves AutoTrail's restore_trail; a file of another trail is MatchTrailsException.
    kept = tmp_path / "kept.json"
    kept.write_text(path.read_text())
    client.shutdown(dry_run=False)
    assert server.join(30)
    assert not path.exists()  # a clean shutdown removes the temporary one
    again = TrailServer([(Step(noop, name="a"), Step(noop, name="b"))], journal=False,
                        dag_file=str(tmp_path / "given.json"))
    again.restore_trail(str(kept))
    with TrailServer(Step(noop, name="c"), journal=False, dag_file=False) as other, \
            pytest.raises(MatchTrailsException, match="'c' is not in the DAG file"):
        other.restore_trail(str(kept))
    again.serve(threaded=True)
    client = TrailClient(again.socket_file, timeout=10)
    assert set(states(client).values()) == {"Succeeded"}
    client.shutdown(dry_run=False)
    assert again.join(30)
    assert (tmp_path / "given.json").exists()  # one given by path stays


def test_a_cycle_is_drawn_so_a_person_can_see_it():
    a, b, c, d = (Step(noop, name=x) for x in "abcd")
    out = io.StringIO()
    source = write_trail_definition_as_dot([(a, b), (b, c), (c, b), (c, d)], out)
    assert out.getvalue() == source
    require("dot")
    drawn = json.loads(subprocess.run(["dot", "-Tjson"], input=source, capture_output=True,
                                      text=True, check=True).stdout)
    by_id = {o["_gvid"]: o["label"] for o in drawn["objects"]}
    edges = {(by_id[e["tail"]], by_id[e["head"]]): e.get("color") for e in drawn["edges"]}
    assert edges == {("0: a", "1: b"): None, ("1: b", "2: c"): "red",
                     ("2: c", "1: b"): "red", ("2: c", "3: d"): None}
    assert "cycle" in drawn["label"]
    with pytest.raises(CycleError):  # and still no server runs it
        TrailServer([(a, b), (b, c), (c, b)], journal=False, dag_file=False)


def test_a_raising_pre_processor_fails_the_step_as_any_failure_does(serve):
    """A documented difference: AutoTrail made it Failed without the failure handler; trail
    treats it as every failure of the step (handler, pause_on_fail, retries)."""
    def broken(trail_env, context):
        raise KeyError("no such host")

    def handler(trail_env, context, error):
        return f"handled {error!r}"

    client = serve(Step(noop, name="pre", pre_processor=broken, failure_handler=handler)
                   >> Step(noop, name="after"))
    client.start()
    wait_states(client, {"pre": "Paused due to failure", "after": "Waiting"})
    assert client.status(name="pre")[0]["Return value"] == "handled KeyError('no such host')"
    client2 = serve(Step(noop, name="pre", pre_processor=broken, pause_on_fail=False))
    client2.start()
    wait_states(client2, {"pre": "Failed"})
