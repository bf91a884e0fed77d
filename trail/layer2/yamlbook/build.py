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

from trail.core.dag import TrailGraph
from trail.core.step import Step
from trail.layer2.steps.helpers import Instruction
from trail.layer2.steps.hosts import with_host
from trail.layer2.steps.rollout import batch_tags, cut_into_batches, link_batches
from trail.layer2.steps.shell import Command, ShellCommand, ShellResult
from trail.layer2.yamlbook.check import Checked
from trail.layer2.yamlbook.template import render, shell_quoter, shell_template

_STEP_OPTIONS = ("timeout", "kill_grace", "retries", "retry_delay", "backoff", "max_delay",
                 "pause_on_fail", "skip_progeny_on_failure", "idempotent", "priority",
                 "pool", "pool_size", "executor")
_SHELL_OPTIONS = ("cwd", "env", "user", "port", "ssh_options", "sudo", "sudo_user")
Made = tuple[list[Step], list[tuple[Step, Step]], list[Step], list[Step]]


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


def _recorder(name: str, host: str | None,
              also: str | None = None) -> Callable[[Any, Any, Any], Any]:
    """A post-processor keeping the step's value in the context for later templates (a
    rollout's last phase also under the rollout's name: ``also``)."""

    def record(trail_env: Any, context: Any, value: Any) -> Any:
        shown = value
        lines = (value.stdout if isinstance(value, ShellResult)
                 else value.get("stdout") if isinstance(value, dict) else None)
        if isinstance(lines, list):  # a command's value: its output
            shown = "\n".join(lines).strip()
        if host is None:
            context[name] = shown
        else:
            for key in (name, also) if also else (name,):
                context.setdefault(key, {})[host] = shown
        return value

    return record


def build(checked: Checked) -> TrailGraph:
    """The trail: a graph of Steps in file order, linked by ``needs``."""
    data = checked.data
    groups = data.get("host_groups") or {}
    host_options = data.get("host_options") or {}
    graph = TrailGraph()
    made: dict[str, list[Step]] = {}  # a step's name -> what its children need
    for spec in data["steps"]:
        if "host" in spec or "hosts" in spec:
            spec = _with_host_options(spec, host_options)
        steps, pairs, heads, made[spec["name"]] = _steps(spec, checked, groups)
        graph.add_nodes_from(steps)
        graph.add_edges_from(pairs)
        for need in spec.get("needs") or []:
            graph.add_edges_from((parent, child) for parent in made[need] for child in heads)
    return graph


def _with_host_options(spec: dict[str, Any], host_options: Mapping[str, Any]) -> dict[str, Any]:
    """The step with the runbook's host_options under its own (its ssh_options first)."""
    merged = {**host_options, **spec}
    if "ssh_options" in spec and "ssh_options" in host_options:
        merged["ssh_options"] = [*_ssh_list(spec["ssh_options"]),
                                 *_ssh_list(host_options["ssh_options"])]
    return merged


def _ssh_list(options: Any) -> list[str]:
    if isinstance(options, Mapping):
        return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]
    return list(options)


class HostCommand:
    """A command function whose templates see ``{host}``: the step's host."""

    def __init__(self, command: Callable[[Any, Any], Command], host: str) -> None:
        self.command = command
        self.host = host

    def __call__(self, trail_env: Any, context: Any) -> Command:
        return self.command(trail_env, with_host(context, self.host))


def _shell_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    shell_options: dict[str, Any] = {k: spec[k] for k in _SHELL_OPTIONS if k in spec}
    shell_options["shell"] = bool(spec.get("shell"))
    if "ok_exit_codes" in spec:
        codes = frozenset(spec["ok_exit_codes"])
        shell_options["is_exit_code_ignorable"] = codes.__contains__
    return shell_options


def _command(spec: Mapping[str, Any]) -> Callable[[Any, Any], Command]:
    return command_function(spec["run"], bool(spec.get("shell")),
                            frozenset(spec.get("raw") or []))


def _rollout(spec: dict[str, Any], hosts: list[str], options: dict[str, Any]) -> Made:
    """A rolling update: each host's phases (or the step's one command), batch by batch."""
    name = spec["name"]
    phases = spec.get("phases") or [{"name": name, **spec}]
    plan = cut_into_batches(hosts, spec.get("batch"), spec.get("canary"))
    chains: dict[str, list[Step]] = {}
    for label, batch_hosts in plan:
        for host in batch_hosts:
            for phase in phases:
                step_options = {**options, **{k: phase[k] for k in _STEP_OPTIONS if k in phase},
                                **(phase.get("tags") or {}), **batch_tags(name, label)}
                step_options.setdefault("pause_on_fail", False)  # the gate counts it
                if "phases" in spec:
                    step_options["phase"] = phase["name"]
                step_name = f"{phase['name']}@{host}"
                shell = _shell_options({**{k: spec[k] for k in _SHELL_OPTIONS if k in spec},
                                        **phase})
                action = ShellCommand(step_name, HostCommand(_command(phase), host), host=host,
                                      **shell)
                also = name if phase is phases[-1] and phase["name"] != name else None
                chains.setdefault(host, []).append(Step(
                    action, post_processor=_recorder(phase["name"], host, also),
                    name=step_name, host=host, **step_options))
    rollout = link_batches(name, plan, chains, spec.get("max_fail", 0),
                           spec.get("on_max_fail", "ask"))
    heads = [chains[host][0] for host in plan[0][1]]
    return rollout.steps, rollout.pairs, heads, list(rollout.tail)


def _steps(spec: dict[str, Any], checked: Checked, groups: Mapping[str, list[str]]) -> Made:
    """The step's Steps, the links among them, those its needs lead to, and those the steps
    that need it wait for."""
    name = spec["name"]
    options: dict[str, Any] = {k: spec[k] for k in _STEP_OPTIONS if k in spec}
    options.update(spec.get("tags") or {})
    if "when" in spec:
        options["conditional"] = True
    wrap: Callable[[Any], Any] = (lambda action: When(action, spec["when"])) \
        if "when" in spec else (lambda action: action)
    hosts = spec.get("hosts")
    if hosts is not None:
        hosts = groups[hosts] if isinstance(hosts, str) else hosts
        if "limit" in spec:
            options.setdefault("pool", name)
            options["pool_size"] = spec["limit"]
        if any(key in spec for key in ("batch", "canary", "phases")):
            return _rollout(spec, hosts, options)
    if "run" in spec:
        command = _command(spec)
        shell_options = _shell_options(spec)
        if hosts is not None:  # on_hosts' fan-out: name@host, tagged host, limit as a pool
            steps = [Step(wrap(ShellCommand(f"{name}@{host}", HostCommand(command, host),
                                            host=host, **shell_options)),
                          post_processor=_recorder(name, host), name=f"{name}@{host}",
                          host=host, **options)
                     for host in hosts]
            return steps, [], steps, steps
        if "host" in spec:
            command = HostCommand(command, spec["host"])
        action: Any = ShellCommand(name, command, host=spec.get("host"), **shell_options)
    elif "instruction" in spec:
        text = spec["instruction"]
        action = Instruction(name, lambda trail_env, context: render(text, context),
                             reply_needed=spec.get("reply_needed", True))
    elif "ask" in spec:
        action = Ask(name, spec["ask"], spec.get("choices"))
    else:
        action = checked.functions[name]
    steps = [Step(wrap(action), post_processor=_recorder(name, None), name=name, **options)]
    return steps, [], steps, steps
