"""``trail export --yaml``: the YAML of a Python runbook whose steps are all expressible,
or the list of those that are not, each with why.

A step is expressible when everything that makes it is data a YAML runbook can hold: a
ShellCommand with a command string or argument list (not a function) and default
predicates, an Instruction with a template, a function importable as module:function, and
Step options the format has. The YAML written is checked as any YAML runbook is, so what
export writes, ``trail run`` takes.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML

from trail.core.dag import TrailGraph, make_trail_graph, n_of
from trail.core.step import OPTIONS, Step
from trail.layer2.book import Runbook
from trail.layer2.steps.helpers import Instruction
from trail.layer2.steps.hosts import RemoteCommand
from trail.layer2.steps.shell import ShellCommand
from trail.layer2.yamlbook.check import check, schema_problems
from trail.layer2.yamlbook.reader import ReadError, read
from trail.layer2.yamlbook.schema import NAME_PATTERN, STEP_PROPERTIES


def _nothing(trail_env: Any, context: Any) -> None:
    return None


_STEP = Step(_nothing)  # the defaults a Step has when the runbook says nothing
_SHELL = ShellCommand("reference", "true")
_STEP_OPTIONS = ("pause_on_fail", "skip_progeny_on_failure", "timeout", "kill_grace",
                 "idempotent", "executor", "retries", "retry_delay", "backoff", "max_delay",
                 "priority", "pool_size")
_SCALARS = (str, int, float, bool, type(None))


class NotExpressible(Exception):
    """Why one step (or the runbook's context) cannot be written as YAML."""


def export_yaml(book: Runbook) -> tuple[str, list[str]]:
    """The YAML text, and what could not be expressed (empty when the text is complete)."""
    graph = make_trail_graph(book.trail)
    refusals: list[str] = []
    data: dict[str, Any] = {"name": book.name}
    try:
        context = _context(book.context)
    except NotExpressible as exc:
        refusals.append(f"the context: {exc}")
        context = {}
    if context:
        data["context"] = context
    if book.max_parallel is not None:
        data["max_parallel"] = book.max_parallel
    if book.executor != "process":
        data["executor"] = book.executor
    if book.answers:
        data["answers"] = dict(book.answers)
    steps: list[dict[str, Any]] = []
    for group, members in _groups(graph):
        try:
            steps.append(_group(group, members, graph))
        except NotExpressible as exc:
            refusals.append(f"step {group!r}: {exc}")
    data["steps"] = steps
    stream = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = None
    yaml.width = 100
    yaml.dump(data, stream)
    text = stream.getvalue()
    if not refusals:
        refusals = _recheck(text, book)
    return text, refusals


def _context(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if dataclasses.is_dataclass(context) and not isinstance(context, type):
        context = dataclasses.asdict(context)
    if not isinstance(context, Mapping):
        raise NotExpressible(f"a {type(context).__name__} object, not a mapping of values; "
                             "write its values under context: by hand")
    for key, value in context.items():
        if not isinstance(key, str) or not _plain(value):
            raise NotExpressible(f"{key!r} holds {value!r}, which is not a YAML value")
    return dict(context)


def _plain(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    return isinstance(value, _SCALARS)


def _groups(graph: TrailGraph) -> list[tuple[str, list[Step]]]:
    """Steps in trail order, the ``name@host`` steps of one fan-out together."""
    order = sorted(graph.nodes, key=lambda step: n_of(graph, step))
    groups: dict[str, list[Step]] = {}
    for step in order:
        if isinstance(step.tags.get("rollout"), str) and "batch" in step.tags:
            groups.setdefault(step.tags["rollout"], []).append(step)  # one rolling update
            continue
        host = step.tags.get("host")
        fanned = host is not None and step.name == f"{step.name.split('@')[0]}@{host}"
        groups.setdefault(step.name.split("@")[0] if fanned else step.name, []).append(step)
    return list(groups.items())


def _group(name: str, members: list[Step], graph: TrailGraph) -> dict[str, Any]:
    if any("rollout" in step.tags and "batch" in step.tags for step in members):
        raise NotExpressible("a rolling update, which export does not write yet: in YAML "
                             "it is a step with hosts, batch (canary, max_fail) and phases")
    if not re.match(NAME_PATTERN, name):
        raise NotExpressible(f"a YAML step name is letters, digits, _ and -; not {name!r}")
    specs = []
    for step in members:
        spec = _step(step)
        parents = sorted(graph.predecessors(step), key=lambda parent: n_of(graph, parent))
        needs = list(dict.fromkeys(_base(parent) for parent in parents))
        if needs:
            spec["needs"] = needs
        specs.append(spec)
    if len(members) == 1 and "@" not in members[0].name:
        return specs[0]
    hosts = [spec.pop("host", None) for spec in specs]
    for spec in specs:
        del spec["name"]  # name@host: the group's name is the YAML step's
    first = specs[0]
    commands = {id(getattr(m.action_function, "command_function", m)) for m in members}
    if any(spec != first for spec in specs[1:]) or len(commands) > 1:
        raise NotExpressible("its steps on hosts differ in more than the host")
    first["hosts"] = hosts
    if first.get("pool") == name and "pool_size" in first:
        del first["pool"]
        first["limit"] = first.pop("pool_size")
    return {"name": name, **first}


def _base(step: Step) -> str:
    host = step.tags.get("host")
    return step.name.split("@")[0] if host is not None and step.name.endswith(f"@{host}") \
        else step.name


def _step(step: Step) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": step.name}
    for part in ("pre_processor", "post_processor", "failure_handler"):
        if getattr(step, part) is not getattr(_STEP, part):
            raise NotExpressible(f"it has its own {part}")
    if step.retry_on is not None or step.jitter != _STEP.jitter:
        raise NotExpressible("retry_on and jitter have no YAML form")
    if step.conditional:
        raise NotExpressible("a conditional step's guard function has no YAML form (use "
                             "when: on the steps it guards)")
    spec.update(_action(step.action_function))
    for option in _STEP_OPTIONS:
        value = getattr(step, option)
        if value != getattr(_STEP, option):
            spec[option] = value
    # Options are tags too (as written); they were exported as options above.
    tags = {k: v for k, v in step.tags.items()
            if k not in ("name", "host", "pool") and k not in OPTIONS}
    if "pool" in step.tags:
        spec["pool"] = step.tags["pool"]
    for key, value in tags.items():
        if key in STEP_PROPERTIES or key == "n" or not isinstance(value, _SCALARS):
            raise NotExpressible(f"its tag {key}={value!r} has no YAML form")
    if tags:
        spec["tags"] = tags
    if "host" in step.tags and "host" not in spec:
        raise NotExpressible("a host tag on a step that runs no command there")
    return spec


def _action(action: Any) -> dict[str, Any]:
    if type(action) in (ShellCommand, RemoteCommand):
        return _command(action)
    if type(action) is Instruction:
        template = _template_of(action.instruction_function)
        spec: dict[str, Any] = {"instruction": template}
        if not action.reply_needed:
            spec["reply_needed"] = False
        return spec
    module = getattr(action, "__module__", None)
    qualname = getattr(action, "__qualname__", "")
    if module and "<" not in qualname and module not in ("__runbook__", "__main__"):
        try:
            found = getattr(importlib.import_module(module), qualname, None)
        except ImportError:
            found = None
        if found is action:
            return {"call": f"{module}:{qualname}"}
    raise NotExpressible(f"its action {qualname or type(action).__name__} is not a "
                         "module's function (move it into a module beside the runbook to "
                         "call it as module:function)")


def _command(command: ShellCommand) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    what = command.command_function
    if callable(what):
        raise NotExpressible("its command is made by a function")
    spec["run"] = what if isinstance(what, str) else list(what)
    if command.shell:
        spec["shell"] = True
    for predicate in ("is_error_ignorable", "is_error_fatal", "is_exit_code_ignorable",
                      "is_output_ignorable"):
        if getattr(command, predicate) is not getattr(_SHELL, predicate):
            raise NotExpressible(f"its {predicate} has no YAML form")
    if command.timeout is not None or command.kill_grace != _SHELL.kill_grace:
        raise NotExpressible("the command's own timeout/kill_grace: give them to the Step")
    target, default = command.target, _SHELL.target
    if (target.connect_timeout, target.alive_interval) != (default.connect_timeout,
                                                            default.alive_interval):
        raise NotExpressible("ssh's connect_timeout and alive_interval have no YAML form "
                             "(put ConnectTimeout, ServerAliveInterval in ssh_options)")
    if target.port is not None:
        spec["port"] = target.port
    if target.ssh_options:
        spec["ssh_options"] = list(target.ssh_options)
    if target.host is not None:
        spec["host"] = target.host
    if target.user is not None:
        spec["user"] = target.user
    if target.sudo_user == "root":
        spec["sudo"] = True
    elif target.sudo_user is not None:
        spec["sudo_user"] = target.sudo_user
    if command.cwd is not None:
        spec["cwd"] = command.cwd
    if command.env:
        spec["env"] = dict(command.env)
    return spec


def _template_of(function: Any) -> str:
    """The template string behind ``make_simple_templating_function``'s closure (what an
    Instruction built from a string holds), or NotExpressible for any other function."""
    if getattr(function, "__qualname__", "").startswith("make_simple_templating_function."):
        for cell in function.__closure__ or ():
            if isinstance(cell.cell_contents, str):
                return cell.cell_contents
    raise NotExpressible("its instruction is made by a function")


def _recheck(text: str, book: Runbook) -> list[str]:
    """What the YAML runbook checks say of the text written (a shell command with a
    placeholder in quotes, a template naming no context key, ...)."""
    try:
        document = read(text, f"{book.path.stem}.yaml")
    except ReadError as exc:
        return [str(exc)]
    problems = schema_problems(document) + check(document, book.path.parent)[1]
    return [f"as YAML: {problem}" for problem in problems]
