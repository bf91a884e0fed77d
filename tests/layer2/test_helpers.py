"""Instruction, conditional steps, extraction and templating, the shared context."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.support import wait_states, wait_until
from trail import (
    Instruction,
    Step,
    accepts_context,
    accepts_environment,
    accepts_nothing,
    create_conditional_step,
    extraction_wrapper,
    make_context_attribute_based_templating_function,
    make_simple_templating_function,
    threadsafe_class,
)


@dataclass
class Ctx:
    host: str = "db2"
    drain: bool = True


def test_an_instruction_marked_done(serve, executor):
    client = serve(Step(Instruction("lower_ttl", "Lower the DNS TTL of {host}")),
                   context=Ctx(), executor=executor)
    client.start()
    waiting = wait_until(client.steps_waiting_for_user_input, "the instruction")
    assert waiting[0]["Waiting for response"] == "Lower the DNS TTL of db2"
    client.send_message_to_steps(True, dry_run=False)
    wait_states(client, {"lower_ttl": "Succeeded"})
    assert client.status()[0]["Return value"] == (
        "Step completed successfully based on response received.")


def test_an_instruction_not_done_fails(serve, executor):
    client = serve(Step(Instruction("swap", lambda env, ctx: "Swap the disk")),
                   executor=executor)
    client.start()
    wait_until(client.steps_waiting_for_user_input, "the instruction")
    client.send_message_to_steps(False, dry_run=False)
    wait_states(client, {"swap": "Paused due to failure"})
    assert client.status()[0]["Return value"] == (
        "InstructionNotCompletedError: the operator answered False: 'swap' was not completed")


def test_an_instruction_without_reply_only_shows(serve):
    client = serve(Step(Instruction("fyi", "Tell {host}'s owner", reply_needed=False)),
                   context=Ctx())
    client.start()
    wait_states(client, {"fyi": "Succeeded"})
    assert client.status()[0]["Output messages"] == ["Tell db2's owner"]


def branch(serve, executor, guard):
    g = create_conditional_step(guard, name="guard")
    a, b, join, other = (Step(lambda e, c: "ran", name=n) for n in ("a", "b", "join", "other"))
    return serve([(g, a), (a, b), (b, join), (other, join)], executor=executor)


def test_a_conditional_step_returning_false_skips_its_branch(serve, executor):
    client = branch(serve, executor, lambda e, c: False)
    client.start()
    wait_states(client, {"guard": "Succeeded", "a": "Skipped", "b": "Skipped",
                         "other": "Succeeded", "join": "Succeeded"})


def test_a_conditional_step_returning_true_runs_its_branch(serve, executor):
    client = branch(serve, executor, lambda e, c: True)
    client.start()
    wait_states(client, {"guard": "Succeeded", "a": "Succeeded", "b": "Succeeded",
                         "join": "Succeeded"})


def test_a_conditional_step_that_raises_skips_its_branch(serve):
    def guard(e, c):
        raise RuntimeError("not today")

    client = branch(serve, "process", guard)
    client.start()
    wait_states(client, {"guard": "Failed", "a": "Skipped", "b": "Skipped",
                         "join": "Succeeded"})


def test_extraction_wrapper_and_accepts(serve, executor):
    class Store:
        def __init__(self):
            self.saved = None

    def deploy(version, say, retries=0):
        say(f"deploying {version}")
        return {"version": version, "retries": retries}

    action = extraction_wrapper(
        deploy,
        parameter_extractors=[lambda env, ctx: {"version": ctx["version"], "say": env.output},
                              lambda env, ctx: {"retries": 2}],
        return_handlers=[lambda value, ctx: ctx.__setitem__("seen", value)],
        return_value_extractor=lambda value, ctx: f"{value['version']}x{value['retries']}",
    )
    def boom(version):
        raise KeyError(version)

    guarded = extraction_wrapper(boom, [lambda env, ctx: {"version": "v1"}],
                                 exception_handlers=[(KeyError, lambda e, ctx: "handled")])
    steps = [
        Step(action, name="wrapped"),
        Step(guarded, name="guarded"),
        Step(accepts_context(lambda ctx: ctx["version"]), name="ctx"),
        Step(accepts_environment(lambda env: env.output("hi") or "env"), name="env"),
        Step(accepts_nothing(lambda: "nothing"), name="nothing"),
    ]
    client = serve(steps, context={"version": "v1"}, executor=executor)
    client.start()
    wait_states(client, dict.fromkeys(["wrapped", "guarded", "ctx", "env", "nothing"],
                                      "Succeeded"))
    values = {r["Name"]: r["Return value"] for r in client.status()}
    assert values == {"wrapped": "v1x2", "guarded": "handled", "ctx": "v1", "env": "env",
                      "nothing": "nothing"}


def test_templating_functions():
    simple = make_simple_templating_function("drain {host} now")
    assert simple(None, Ctx()) == "drain db2 now"
    assert simple(None, {"host": "db3"}) == "drain db3 now"
    with pytest.raises(AttributeError, match="needs 'host'"):
        simple(None, object())

    said = []

    class Env:
        def output(self, message):
            said.append(message)

    conditional = make_context_attribute_based_templating_function("drain", "drain {host}")
    assert conditional(Env(), Ctx()) == "drain db2"
    assert conditional(Env(), Ctx(drain=False)) is None
    assert said == ['Nothing to do since "drain" in context has the value: "False" and the '
                    'expected value is: "True".']


@threadsafe_class
class Tally:
    def __init__(self):
        self.count = 0
        self.who = []

    def add(self, name):
        current = self.count
        time.sleep(0.002)  # widen the race a lock must close
        self.count = current + 1
        self.who = [*self.who, name]


def test_a_threadsafe_context_written_by_parallel_process_steps(serve, executor):
    tally = Tally()
    steps = [Step(lambda env, ctx, i=i: [ctx.add(i) for _ in range(10)], name=f"w{i}")
             for i in range(6)]
    client = serve(steps, context=tally, executor=executor)
    client.start()
    wait_states(client, {f"w{i}": "Succeeded" for i in range(6)})
    assert tally.count == 60
    assert sorted(set(tally.who)) == list(range(6)) and len(tally.who) == 60
    tally.count = 5  # attribute writes reach the shared instance too
    assert tally.count == 5


def test_a_command_template_says_how_to_write_a_literal_brace():
    from trail.layer2.steps.helpers import apply_object_attributes_to_template as fill

    class Nothing:
        pass

    assert fill("awk '{{print $1}}' ${{HOME}}", Nothing()) == "awk '{print $1}' ${HOME}"
    for shell_syntax in ("{ echo x; exit 7; }", "${VAR}", "x }"):
        with pytest.raises((AttributeError, ValueError), match=r"doubled, as \{\{ and \}\}"):
            fill(shell_syntax, Nothing())
