"""A checked YAML runbook becomes Steps: the same ShellCommand, Instruction and Step (and
``on_hosts``' fan-out) a Python runbook would build, so both run, steer and recover alike.

Values flow between steps through the context: each step's post-processor (which runs in
the server, not in the step's process) records the step's value under its name, so a later
step's ``{pick}`` is what ``pick`` returned (a command's value there is its output text; a
step on hosts records ``{host: value}``).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from trail.core.step import Step
from trail.layer2.steps.helpers import Instruction
from trail.layer2.steps.shell import Command, ShellCommand, ShellResult
from trail.layer2.yamlbook.check import Checked
from trail.layer2.yamlbook.template import render, shell_quoter, shell_template

_STEP_OPTIONS = ("timeout", "kill_grace", "retries", "retry_delay", "backoff", "max_delay",
                 "pause_on_fail", "skip_progeny_on_failure", "idempotent", "priority",
                 "pool", "pool_size", "executor")
_SHELL_OPTIONS = ("cwd", "env", "user", "port", "ssh_options", "sudo", "sudo_user")


def command_function(run: str | list[str], shell: bool,
                     raw: frozenset[str]) -> Callable[[Any, Any], Command]:
    """The command of a run step, its values filled in safely (see ``template``)."""
    if isinstance(run, list) or not shell:
        words = run if isinstance(run, list) else shlex.split(run)  # words fixed at load

        def argv(trail_env: Any, context: Any) -> Command:
            return [render(word, context) for word in words]

        return argv

    quote = shell_quoter(raw)
    run = shell_template(run)

    def script(trail_env: Any, context: Any) -> Command:
        return render(run, context, quote)

    return script


class Ask:
    """A question to the operator; the reply is the step's value (one of ``choices``, when
    given; another reply fails the step, which can be rerun)."""

    def __init__(self, name: str, prompt: str, choices: list[Any] | None) -> None:
        self.name = self.__name__ = name
        self.prompt = prompt
        self.choices = choices

    def __str__(self) -> str:
        return self.name

    def __call__(self, trail_env: Any, context: Any) -> Any:
        prompt = render(self.prompt, context)
        if self.choices:
            prompt += f" ({' / '.join(map(str, self.choices))})"
        reply = trail_env.input(prompt)
        if self.choices and reply not in self.choices and str(reply) not in map(str, self.choices):
            raise ValueError(f"{reply!r} is not one of {self.choices}")
        return reply


class When:
    """Runs the action only when an earlier step's value says so; otherwise returns False,
    which (the step being conditional) skips the steps below it."""

    def __init__(self, action: Callable[..., Any], condition: Mapping[str, Any]) -> None:
        self.action = action
        self.condition = dict(condition)
        self.name = self.__name__ = str(getattr(action, "__name__", action))

    def __str__(self) -> str:
        return self.name

    @property
    def looked_at(self) -> str:
        return str(self.condition.get("step", self.condition.get("key")))

    def holds(self, context: Mapping[str, Any]) -> bool:
        value = context.get(self.looked_at)
        if "equals" in self.condition:
            return _same(value, self.condition["equals"])
        if "not_equals" in self.condition:
            return not _same(value, self.condition["not_equals"])
        return any(_same(value, choice) for choice in self.condition["in"])

    def __call__(self, trail_env: Any, context: Any) -> Any:
        if not self.holds(context):
            looked_at = self.looked_at
            trail_env.output(f"Not run: {self.condition} does not hold "
                             f"({looked_at} = {context.get(looked_at)!r}).")
            return False
        return self.action(trail_env, context)


def _same(value: Any, expected: Any) -> bool:
    return value == expected or str(value) == str(expected)


def _recorder(name: str, host: str | None) -> Callable[[Any, Any, Any], Any]:
    """A post-processor keeping the step's value in the context for later templates."""

    def record(trail_env: Any, context: Any, value: Any) -> Any:
        shown = value
        lines = (value.stdout if isinstance(value, ShellResult)
                 else value.get("stdout") if isinstance(value, dict) else None)
        if isinstance(lines, list):  # a command's value: its output
            shown = "\n".join(lines).strip()
        if host is None:
            context[name] = shown
        else:
            context.setdefault(name, {})[host] = shown
        return value

    return record


def build(checked: Checked) -> nx.DiGraph:
    """The trail: a graph of Steps in file order, linked by ``needs``."""
    data = checked.data
    groups = data.get("host_groups") or {}
    graph = nx.DiGraph()
    made: dict[str, list[Step]] = {}
    for spec in data["steps"]:
        made[spec["name"]] = steps = _steps(spec, checked, groups)
        graph.add_nodes_from(steps)
        for need in spec.get("needs") or []:
            graph.add_edges_from((parent, child) for parent in made[need] for child in steps)
    return graph


def _steps(spec: dict[str, Any], checked: Checked, groups: Mapping[str, list[str]]) -> list[Step]:
    name = spec["name"]
    options: dict[str, Any] = {k: spec[k] for k in _STEP_OPTIONS if k in spec}
    options.update(spec.get("tags") or {})
    if "when" in spec:
        options["conditional"] = True
    wrap: Callable[[Any], Any] = (lambda action: When(action, spec["when"])) \
        if "when" in spec else (lambda action: action)
    if "run" in spec:
        command = command_function(spec["run"], bool(spec.get("shell")),
                                   frozenset(spec.get("raw") or []))
        shell_options: dict[str, Any] = {k: spec[k] for k in _SHELL_OPTIONS if k in spec}
        shell_options["shell"] = bool(spec.get("shell"))
        if "ok_exit_codes" in spec:
            codes = frozenset(spec["ok_exit_codes"])
            shell_options["is_exit_code_ignorable"] = codes.__contains__
        if "hosts" in spec:  # on_hosts' fan-out: name@host, tagged host, limit as a pool
            hosts = spec["hosts"]
            if "limit" in spec:
                options.setdefault("pool", name)
                options["pool_size"] = spec["limit"]
            return [Step(wrap(ShellCommand(f"{name}@{host}", command, host=host, **shell_options)),
                         post_processor=_recorder(name, host), name=f"{name}@{host}",
                         host=host, **options)
                    for host in (groups[hosts] if isinstance(hosts, str) else hosts)]
        action: Any = ShellCommand(name, command, host=spec.get("host"), **shell_options)
    elif "instruction" in spec:
        text = spec["instruction"]
        action = Instruction(name, lambda trail_env, context: render(text, context),
                             reply_needed=spec.get("reply_needed", True))
    elif "ask" in spec:
        action = Ask(name, spec["ask"], spec.get("choices"))
    else:
        action = checked.functions[name]
    return [Step(wrap(action), post_processor=_recorder(name, None), name=name, **options)]
