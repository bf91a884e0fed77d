"""YAML runbooks: read as YAML 1.2 with positions, every problem at its line, safe
templates, the same Steps as a Python runbook, and `trail run/validate/schema/dot` on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.support import wait_states
from trail import Instruction, Prompt, ShellCommand, TrailClient
from trail.core.dag import make_trail_graph
from trail.errors import RunbookError, YamlRunbookError
from trail.layer2.runbook import load_runbook
from trail.layer2.yamlbook import SCHEMA
from trail.layer2.yamlbook.reader import read

ROOT = Path(__file__).parents[2]
ROLLING = ROOT / "examples" / "rolling.yaml"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TRAIL = [sys.executable, "-m", "trail"]


def write(tmp_path: Path, text: str, name: str = "book.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problems of a runbook, each 'line:column: message' (file name dropped)."""
    path = write(tmp_path, text)
    with pytest.raises(YamlRunbookError) as caught:
        load_runbook(path)
    assert all(str(p).startswith(f"{path}:") for p in caught.value.problems)
    return [str(p)[len(str(path)) + 1:] for p in caught.value.problems]


def trail(*args: str, timeout: float = 60, path: Path | None = None
          ) -> subprocess.CompletedProcess[str]:
    env = ENV if path is None else {**ENV, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}"}
    return subprocess.run([*TRAIL, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL, cwd=ROOT)


def drive(client: TrailClient, answers: dict[str, Any],
          begin: Callable[[], Any] | None = None) -> dict[str, dict[str, Any]]:
    """Start (or ``begin``), answer every prompt, and return each step's row when the
    trail is done."""
    with client.subscribe() as events:
        (begin or client.start)()
        while not client.info()["finished"]:
            event = events.next(timeout=30)
            assert event is not None, f"stalled: {client.status()}"
            if isinstance(event, Prompt):
                client.send_message_to_steps(answers.get(event.name, True), dry_run=False,
                                             n=event.n)
    rows = client.status(fields=["State", "Return value", "Output messages"])
    return {row["Name"]: row for row in rows}


def stdout(row: dict[str, Any]) -> list[str]:
    """What a command step wrote on stdout, from its output messages (its return value is
    AutoTrail's text: '[Command: ...] -- Succeeded with exit code: 0.')."""
    prefix = "[STDOUT] -- "
    return [m[len(prefix):] for m in row["Output messages"] if m.startswith(prefix)]


# --- reading ---------------------------------------------------------------------------

def test_no_stays_a_string_and_dates_stay_text(tmp_path):
    book = load_runbook(write(tmp_path, """
        context: {enabled: no, country: NO, on: off, day: 2024-01-31}
        steps: [{name: a, run: [echo, "{enabled}"]}]
    """))
    assert book.context == {"enabled": "no", "country": "NO", "on": "off", "day": "2024-01-31"}


def test_a_duplicate_key_is_refused_at_its_line(tmp_path):
    found = problems(tmp_path, """
        steps:
          - name: a
            run: [echo, one]
            run: [echo, two]
    """)
    assert len(found) == 1
    assert found[0].startswith("5:5: ") and 'duplicate key "run"' in found[0]


def test_broken_yaml_says_where(tmp_path):
    found = problems(tmp_path, "steps:\n  - name: [a\n  - run: b\n")
    assert len(found) == 1 and found[0].startswith("3:") and "not valid YAML" in found[0]


def test_positions_of_keys_and_values():
    document = read("a:\n  - x\n  - {b: 1}\n", "f.yaml")
    assert document.values[("a", 1)] == (3, 5)
    assert document.keys[("a", 1, "b")] == (3, 6)


# --- every problem at once, each at its line --------------------------------------------

BAD = """\
name: bad
context: {service: api}
max_paralel: 2
steps:
  - name: check
    run: "echo {servce}"
    nedds: []
  - name: loop1
    run: [echo, a]
    needs: [loop2]
  - name: loop2
    run: [echo, b]
    needs: [loop1, chek]
    timeout: soon
  - name: check
    call: no_such_module_here:fn
  - name: quoted
    run: "echo '{service}'"
    shell: true
  - name: both
    run: [echo]
    ask: "why?"
"""


def test_every_problem_is_reported_at_once_with_its_line(tmp_path):
    found = problems(tmp_path, BAD)
    assert found == [
        "3:1: unknown runbook key 'max_paralel' (did you mean 'max_parallel'?)",
        "6:10: steps[0].run: the template names 'servce', which is neither a context key "
        "nor a step this one needs (did you mean 'service'?)",
        "7:5: steps[0]: unknown step key 'nedds' (did you mean 'needs'?)",
        "10:12: steps[1].needs: the needs make a cycle (each needs the next): "
        "loop1 -> loop2 -> loop1; its steps: loop1 (line 8), loop2 (line 11)",
        "13:20: steps[2].needs[1]: needs 'chek', which is no step (did you mean 'check'?)",
        "14:14: steps[2].timeout: 'soon' is not of type 'number'",
        "15:11: steps[3].name: the step name 'check' is used twice (first at line 5)",
        "16:11: steps[3].call: call 'no_such_module_here:fn' does not import: "
        "ModuleNotFoundError: No module named 'no_such_module_here'",
        "18:10: steps[4].run: {service} stands inside quotes in a shell command: drop the "
        "quotes (trail quotes the value) or list it under raw",
        "22:5: steps[5].ask: a step is one of run, instruction, ask, call, phases; this one "
        "has run and ask",
    ]


def test_a_call_to_a_missing_function_suggests_one(tmp_path):
    write(tmp_path, "def announce(trail_env, context):\n    return 1\n", "hooks_for_test.py")
    found = problems(tmp_path, """
        steps:
          - name: tell
            call: hooks_for_test:anounce
    """)
    assert found == ["4:11: steps[0].call: call 'hooks_for_test:anounce': the module "
                     "'hooks_for_test' has no function 'anounce' (did you mean 'announce'?)"]


def test_templates_may_use_only_steps_above(tmp_path):
    found = problems(tmp_path, """
        steps:
          - name: pick
            ask: "which?"
          - name: other
            run: [echo, "{pick}"]
          - name: guarded
            run: [echo]
            needs: [pick]
            when: {step: other, equals: x}
    """)
    assert found == [
        "6:17: steps[1].run[1]: the template names 'pick', which is neither a context key "
        "nor a step this one needs",
        "10:18: steps[2].when.step: when looks at 'other', which is not a step this one "
        "needs (directly or further up)",
    ]


def test_misplaced_options_are_named(tmp_path):
    found = problems(tmp_path, """
        host_groups: {web: [web1, web2]}
        answers: {nope: 1}
        steps:
          - name: say
            instruction: "hello"
            sudo: true
          - name: fan
            run: [echo]
            hosts: webs
            tags: {host: x}
    """)
    assert found == [
        "3:11: answers.nope: an answer for 'nope', which is no step",
        "7:5: steps[0].sudo: 'sudo' applies to run steps, not to 'instruction' steps",
        "10:12: steps[1].hosts: no host group 'webs' in host_groups (did you mean 'web'?)",
        "11:12: steps[1].tags.host: the tag 'host' is set by trail or is a step option; "
        "choose another name",
    ]


# --- the JSON Schema ----------------------------------------------------------------------

def test_the_schema_validates_the_example_and_rejects_a_typo():
    validator = Draft202012Validator(SCHEMA)
    Draft202012Validator.check_schema(SCHEMA)
    data = read(ROLLING.read_text(), str(ROLLING)).data
    assert list(validator.iter_errors(data)) == []
    data["steps"][0]["timout"] = 5
    errors = list(validator.iter_errors(data))
    assert len(errors) == 1 and "'timout' was unexpected" in errors[0].message


# --- the same Steps as Python ---------------------------------------------------------------

def test_a_yaml_runbook_is_the_steps_of_its_python_twin(tmp_path):
    book = load_runbook(write(tmp_path, """
        name: twin
        context: {service: api}
        max_parallel: 2
        executor: thread
        answers: {confirm: true}
        host_groups: {web: [web1, web2]}
        steps:
          - name: check
            run: "systemctl is-active {service}"
            tags: {phase: pre}
            priority: 3
          - name: confirm
            instruction: "Look, then mark done"
            needs: [check]
          - name: restart
            run: [systemctl, restart, "{service}"]
            hosts: web
            limit: 1
            sudo: true
            needs: [confirm]
            timeout: 60
            retries: 2
            pause_on_fail: false
            idempotent: true
    """))
    assert (book.name, book.max_parallel, book.executor, book.answers) == \
        ("twin", 2, "thread", {"confirm": True})
    graph = make_trail_graph(book.trail)
    steps = {step.name: step for step in graph.nodes}
    assert list(steps) == ["check", "confirm", "restart@web1", "restart@web2"]
    assert sorted((a.name, b.name) for a, b in graph.edges) == [
        ("check", "confirm"), ("confirm", "restart@web1"), ("confirm", "restart@web2")]
    check, confirm, web1 = steps["check"], steps["confirm"], steps["restart@web1"]
    assert isinstance(check.action_function, ShellCommand)
    # Options are tags too, as written (AutoTrail's tags are free-form).
    assert check.tags == {"name": "check", "phase": "pre", "priority": 3}
    assert check.priority == 3
    assert isinstance(confirm.action_function, Instruction)
    assert web1.tags == {"name": "restart@web1", "host": "web1", "pool": "restart",
                         "pool_size": 1, "timeout": 60, "retries": 2, "pause_on_fail": False,
                         "idempotent": True}
    assert (web1.pool_size, web1.timeout, web1.retries, web1.pause_on_fail,
            web1.idempotent) == (1, 60, 2, False, True)
    command = web1.action_function
    assert isinstance(command, ShellCommand)
    assert command.host == "web1" and command.target.sudo_user == "root"
    assert command.command(None, {"service": "api"}) == ["systemctl", "restart", "api"]


# --- running: values, conditions, and no injection ---------------------------------------

INJECTION = "x; touch {marker}; echo $(touch {marker}) `touch {marker}` ' \" \\"


@pytest.mark.parametrize("form", ["argv", "words", "shell"])
def test_a_value_never_becomes_a_command(tmp_path, serve, form):
    marker = tmp_path / "pwned"
    evil = INJECTION.format(marker=marker)
    run = {"argv": '["echo", "got:{evil}"]', "words": '"echo got:{evil}"',
           "shell": '"echo got:{evil} | cat"\n    shell: true'}[form]
    book = load_runbook(write(tmp_path, f"""
context: {{evil: {json.dumps(evil)}}}
steps:
  - name: say
    run: {run}
"""))
    assert book.context == {"evil": evil}
    client = serve(book.trail, context=book.context, executor="thread")
    rows = drive(client, {})
    assert rows["say"]["State"] == "Succeeded", rows
    assert stdout(rows["say"]) == [f"got:{evil}"]
    assert not marker.exists()


def test_an_answer_flows_into_later_steps_and_when_guards_a_branch(tmp_path, serve, executor):
    book = load_runbook(write(tmp_path, """
        context: {service: api}
        steps:
          - name: first
            ask: "Which first?"
            choices: [blue, green]
          - name: restart
            run: ["echo", "restart {service}-{first}"]
            needs: [first]
          - name: only_green
            run: [echo, green]
            needs: [restart]
            when: {step: first, equals: green}
          - name: after_green
            run: [echo, after]
            needs: [only_green]
          - name: said
            run: ["echo", "{restart}!"]
            needs: [restart]
    """))
    client = serve(book.trail, context=book.context, executor=executor)
    rows = drive(client, {"first": "blue"})
    assert stdout(rows["restart"]) == ["restart api-blue"]
    assert stdout(rows["said"]) == ["restart api-blue!"]
    assert rows["only_green"]["State"] == "Succeeded"
    assert rows["only_green"]["Return value"] is False
    assert rows["after_green"]["State"] == "Skipped"


def test_an_answer_outside_the_choices_fails_the_step(tmp_path, serve):
    book = load_runbook(write(tmp_path, """
        steps:
          - {name: first, ask: "Which?", choices: [blue, green]}
    """))
    client = serve(book.trail, context=book.context, executor="thread")
    client.start()
    wait_states(client, {"first": "Running"})
    client.send_message_to_steps("red", dry_run=False, name="first")
    wait_states(client, {"first": "Paused due to failure"})


# --- the command line ----------------------------------------------------------------------

def test_trail_validate_and_schema(tmp_path):
    good = trail("validate", str(ROLLING))
    assert good.returncode == 0, good.stderr
    assert "ok, trail 'rolling' of 9 steps" in good.stdout
    bad = trail("validate", str(write(tmp_path, BAD)))
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 10
    assert f"{tmp_path}/book.yaml:3:1: unknown runbook key 'max_paralel'" in bad.stderr
    verdict = json.loads(trail("validate", "--json", str(write(tmp_path, BAD))).stdout)
    assert verdict["ok"] is False and verdict["problems"][0]["line"] == 3
    printed = json.loads(trail("schema").stdout)
    assert printed == json.loads(json.dumps(SCHEMA))


def test_trail_run_and_dot_take_the_example(tmp_path):
    result = trail("run", str(ROLLING), "--plain", "--auto-answer",
                   "--journal", str(tmp_path / "j.sqlite"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trail rolling: serving" in result.stdout
    assert "finished: 9 Succeeded" in result.stdout
    assert "api 2.4 rolled out, blue first" in result.stdout
    drawn = trail("dot", str(ROLLING), "-o", str(tmp_path / "rolling.dot"))
    assert drawn.returncode == 0, drawn.stderr
    assert "restart_first" in (tmp_path / "rolling.dot").read_text()


def test_trail_run_keeps_max_parallel(tmp_path):
    log = tmp_path / "order.log"
    book = write(tmp_path, """
        context: {log: LOG}
        max_parallel: 1
        steps:
          - name: a
            run: "echo start >> {log}; sleep 0.3; echo end >> {log}"
            shell: true
          - name: b
            run: "echo start >> {log}; sleep 0.3; echo end >> {log}"
            shell: true
    """.replace("LOG", str(log)))
    result = trail("run", str(book), "--plain", "--journal", str(tmp_path / "j.sqlite"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert log.read_text().split() == ["start", "end", "start", "end"]


def test_a_bad_yaml_runbook_stops_trail_run_with_its_lines(tmp_path):
    result = trail("run", str(write(tmp_path, BAD)), "--plain")
    assert result.returncode == 2
    assert "book.yaml:16:11: steps[3].call" in result.stderr


def test_a_python_runbook_still_loads_with_max_parallel(tmp_path):
    path = write(tmp_path, "from trail import Step\ntrail = Step(print, name='p')\n"
                 "max_parallel = 3\n", "book.py")
    book = load_runbook(path)
    assert (book.name, book.max_parallel) == ("book", 3)
    with pytest.raises(RunbookError):
        load_runbook(tmp_path / "missing.yaml")


def test_the_readme_example_is_a_sound_runbook(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## YAML runbooks"):]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", 1)]
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "hooks.py").write_text("def announce(trail_env, context):\n"
                                                 "    return 'told'\n")
    book = load_runbook(write(tmp_path, example, "deploy.yaml"))
    names = [step.name for step in make_trail_graph(book.trail).nodes]
    assert names[:9] == ["check", "disk", "confirm", "pick", "restart@web1", "restart@web2",
                         "restart@web3", "canary_report", "notify"]
    # The rolling update: a canary, then batches of half the hosts (one of three).
    phases = ("drain", "upgrade", "health")
    assert names[9:] == [
        *(f"{phase}@web1" for phase in phases), "deploy/canary",
        *(f"{phase}@web2" for phase in phases), "deploy/batch1",
        *(f"{phase}@web3" for phase in phases), "deploy/batch2"]
    assert book.context == {"service": "api", "enabled": "no"}


@pytest.mark.parametrize("window", ["0", "1"])
@pytest.mark.parametrize("executor", ["process", "thread"])  # TMPDIR reaches this machine's
def test_the_failover_in_yaml_does_what_its_python_twin_does(tmp_path, serve, executor,
                                                              window, monkeypatch):  # steps
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the first step makes the cluster
    book = load_runbook(ROOT / "examples" / "failover.yaml")
    client = serve(book.trail, context={**book.context, "maintenance_window": window},
                   executor=executor)
    rows = drive(client, {"choose_replica": "db2"})
    assert {row["State"] for row in rows.values()} == {"Succeeded"}, rows
    values = {name: row["Return value"] for name, row in rows.items()}
    # the same values as examples/failover.py (tests/e2e/test_examples.py)
    assert stdout(rows["check_lag"]) == ["db2: lag 0 s", "db3: lag 4 s"]
    assert stdout(rows["repoint_dns"]) == ["db.example.internal -> db2"]
    assert stdout(rows["verify"]) == ["fail-over to db2 complete"]
    if window == "1":
        assert values["post_notice"] is False
        assert rows["post_notice"]["Output messages"][0].startswith("Not run:")
    else:
        assert stdout(rows["post_notice"]) == ["fail-over of db1 under way"]
    cluster = Path(stdout(rows["cluster"])[0])
    assert cluster.parent == tmp_path
    assert (cluster / "db1.role").read_text() == "retired\n"


def test_shell_variables_are_the_shells_and_when_keys_are_checked(tmp_path):
    found = problems(tmp_path, """
        context: {window: "0"}
        steps:
          - name: a
            run: "echo ${HOME:-x} {window}"
            shell: true
          - name: b
            run: [echo]
            when: {key: windw, equal: "0"}
          - name: c
            run: [echo]
            when: {key: window, step: a, equals: "0"}
            needs: [a]
    """)
    assert found == [
        "9:17: steps[1].when.key: when looks at the context key 'windw', which the context "
        "does not have (did you mean 'window'?)",
        "9:24: steps[1].when: unknown when key 'equal' (did you mean 'equals'?)",
        "12:11: steps[2].when: {'key': 'window', 'step': 'a', 'equals': '0'} has too many "
        "properties",
        "12:11: steps[2].when: when looks at one step: or one key: (a context value), then "
        "equals:, not_equals: or in:"]


def test_a_yaml_runbook_is_steered_by_names_and_tags(tmp_path, serve):
    book = load_runbook(ROLLING)
    client = serve(book.trail, context=book.context, executor="thread",
                   max_parallel=book.max_parallel)
    assert client.pause(dry_run=False, phase="check") == [{"n": 0, "name": "check"}]
    client.skip(dry_run=False, name="warm_green")
    client.start()
    wait_states(client, {"check": "Paused", "disk": "Waiting"})
    rows = drive(client, dict(book.answers),
                 begin=lambda: client.resume(dry_run=False, name="check"))
    assert rows["warm_green"]["State"] == "Skipped"
    assert {row["State"] for name, row in rows.items() if name != "warm_green"} == \
        {"Succeeded"}
    assert rows["announce"]["Return value"] == "api 2.4 rolled out, blue first"


# --- export --------------------------------------------------------------------------------

TWIN = '''\
from trail import Instruction, ShellCommand, Step, on_hosts
from twin_hooks import summary

context = {"service": "api", "level": 3}
max_parallel = 2
ANSWERS = {"confirm": True}
check = Step(ShellCommand("check", "echo {service} up"), phase="pre", priority=2)
listing = Step(ShellCommand("listing", "ls -d . | cat", shell=True, cwd="/"), timeout=30,
               retries=2, retry_delay=0.1, idempotent=True)
confirm = Step(Instruction("confirm", "Look at {service}, then mark done"), pool="ops")
fan = on_hosts(["web1", "web2"], ["systemctl", "restart", "{service}"], name="restart",
               limit=1, sudo=True, pause_on_fail=False)
done = Step(summary, name="summary")
trail = [(check, listing), (check, confirm), *((confirm, s) for s in fan),
         (listing, done), (confirm, done)]
'''


def test_export_writes_a_python_runbook_as_the_same_steps(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # the Python runbook imports its module
    (tmp_path / "twin_hooks.py").write_text(
        "def summary(trail_env, context):\n    return f\"{context['service']} done\"\n")
    python = write(tmp_path, TWIN, "twin.py")
    exported = trail("export", "--yaml", str(python), "-o", str(tmp_path / "twin.yaml"),
                     path=tmp_path)
    assert exported.returncode == 0, exported.stderr
    original, again = load_runbook(python), load_runbook(tmp_path / "twin.yaml")
    assert (again.name, again.context, again.max_parallel, again.answers) == \
        ("twin", {"service": "api", "level": 3}, 2, {"confirm": True})
    one, two = make_trail_graph(original.trail), make_trail_graph(again.trail)

    def shape(graph: Any) -> list[Any]:
        return [(s.name, s.tags, s.timeout, s.retries, s.retry_delay, s.idempotent,
                 s.priority, s.pool_size, s.pause_on_fail,
                 sorted(p.name for p in graph.predecessors(s))) for s in graph.nodes]

    assert shape(one) == shape(two)
    web1 = next(s for s in two.nodes if s.name == "restart@web1").action_function
    assert web1.target.sudo_user == "root" and web1.host == "web1"


def test_export_then_run_gives_the_same_run(tmp_path, serve):
    path = tmp_path / "runbook.yaml"
    exported = trail("export", "--yaml", str(ROOT / "examples" / "runbook.py"), "-o", str(path))
    assert exported.returncode == 0, exported.stderr
    python, yaml = load_runbook(ROOT / "examples" / "runbook.py"), load_runbook(path)
    runs = []
    for book in (python, yaml):
        client = serve(book.trail, context=book.context, executor="thread")
        runs.append({name: (row["State"], row["Output messages"])
                     for name, row in drive(client, {"swap_disk": True}).items()})
    assert runs[0] == runs[1]
    assert runs[1]["close"] == ("Succeeded", ["Close OPS-1234"])


def test_export_names_what_cannot_be_expressed():
    result = trail("export", "--yaml", str(ROOT / "examples" / "failover.py"))
    assert result.returncode == 2 and result.stdout == ""
    said = result.stderr.splitlines()
    assert any("step 'check_lag': its command is made by a function" in line for line in said)
    assert any("step 'verify': its action verify is not a module's function" in line
               for line in said)
    assert any("the context: a SharedProxy object" in line for line in said)


def test_wrong_types_are_named_where_they_are(tmp_path):
    found = problems(tmp_path, """
        steps:
          - name: a
            run: [echo]
            needs: a
            tags: x
          - name: b
            run: 5
            hosts: [web1, 2]
          - 7
    """)
    assert found == [
        "5:12: steps[0].needs: 'a' is not of type 'array'",
        "6:11: steps[0].tags: 'x' is not of type 'object'",
        "8:10: steps[1].run: expected array or string, got 5",
        "9:19: steps[1].hosts[1]: 2 is not of type 'string'",
        "10:5: steps[2]: 7 is not of type 'object'",
    ]
    assert problems(tmp_path, "") == ["1:1: the file is empty: a runbook needs at least steps:"]
