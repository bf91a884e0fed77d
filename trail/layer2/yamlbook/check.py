"""Every problem of a YAML runbook at once, each at its line and column: the schema
(jsonschema), then what a schema cannot say (names, needs, cycles, templates, imports)."""

from __future__ import annotations

import difflib
import importlib
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from trail.layer2.steps.rollout import cut_into_batches
from trail.layer2.yamlbook.reader import Document, Path, Problem
from trail.layer2.yamlbook.schema import KINDS, SCHEMA, STEP_PROPERTIES
from trail.layer2.yamlbook.template import fields, quoted_placeholders, root, shell_template

_VALIDATOR = Draft202012Validator(SCHEMA)
# Options that shape a command, meaningless on an instruction, a question or a call.
_COMMAND_ONLY = ("shell", "raw", "host", "hosts", "limit", "user", "port", "ssh_options",
                 "sudo", "sudo_user", "env", "cwd", "ok_exit_codes", "batch", "canary",
                 "max_fail", "on_max_fail")
_ROLLING = ("batch", "canary", "phases")  # any of them makes a step a rolling update
_RESERVED_TAGS = ("name", "n", "host", "pool")


@dataclass
class Checked:
    """A runbook that passed every check: its data, the functions its calls name, and
    each step's ancestors (the steps whose values its templates may use)."""

    data: dict[str, Any]
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    ancestors: dict[str, set[str]] = field(default_factory=dict)


def where(path: Path) -> str:
    """``steps[2].run`` for a path, to say which value a problem is about."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _at(path: Path, message: str) -> str:
    return f"{where(path)}: {message}" if path else message


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def schema_problems(document: Document) -> list[Problem]:
    """The schema's verdicts, unknown keys with a did-you-mean."""
    problems: list[Problem] = []
    errors = _VALIDATOR.iter_errors(document.data)
    for error in sorted(errors, key=lambda e: [str(part) for part in e.path]):
        problems.extend(_explain(document, error))
    return problems


def _explain(document: Document, error: ValidationError) -> Iterator[Problem]:
    path: Path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        if not known:  # a mapping of free names (answers, tags): a value of the wrong type
            yield document.at(path, _at(path, error.message))
            return
        kind = ("runbook" if not path else "step" if len(path) == 2
                else "phase" if len(path) == 4 and path[2] == "phases" else str(path[-1]))
        for key in error.instance:
            if key not in known:
                yield document.at((*path, key), _at(path, f"unknown {kind} key {key!r}"
                                  f"{_suggest(key, known)}"), key=True)
        return
    if not path and error.instance is None:
        yield document.at(path, "the file is empty: a runbook needs at least steps:")
        return
    deeper = [sub for sub in error.context or () if sub.relative_path]
    if error.validator == "anyOf" and deeper:  # the right shape, a wrong item inside
        yield from _explain(document, deeper[0])
        return
    if error.validator == "anyOf":
        expected = " or ".join(sorted({str(s.get("type")) for s in error.validator_value}))
        yield document.at(path, _at(path, f"expected {expected}, got {error.instance!r}"))
        return
    yield document.at(path, _at(path, error.message))


Report = Callable[..., None]  # problem(path, message, key=False)


def check(document: Document, base: FilePath) -> tuple[Checked, list[Problem]]:
    """The checks beyond the schema (on what is well-typed enough to look at)."""
    data = document.data if isinstance(document.data, dict) else {}
    checked = Checked(data)
    problems: list[Problem] = []

    def problem(path: Path, message: str, *, key: bool = False) -> None:
        problems.append(document.at(path, _at(path, message), key=key))

    context: dict[str, Any] = _mapping(data.get("context"))
    steps = [(i, s) for i, s in enumerate(_list(data.get("steps")))
             if isinstance(s, dict) and isinstance(s.get("name"), str)]
    names = _check_names(document, steps, context, problem)
    groups: dict[str, Any] = _mapping(data.get("host_groups"))
    needs: dict[str, set[str]] = {name: set() for name in names}  # step -> what it needs
    for index, step in steps:
        _check_step(index, step, groups, problem)
        _check_needs(index, step, names, needs, problem)
        if isinstance(step.get("call"), str) and ":" in step["call"]:
            function = _import(step["call"], base, ("steps", index, "call"), problem)
            if function is not None:
                checked.functions[step["name"]] = function
    for cycle in _cycles(needs, names):
        lines = ", ".join(f"{n} (line {document.at(('steps', names[n]), '').line})"
                          for n in cycle)
        problem(("steps", names[cycle[0]], "needs"), f"the needs make a cycle (each needs "
                f"the next): {' -> '.join([*cycle, cycle[0]])}; its steps: {lines}")
    checked.ancestors = {name: _ancestors(needs, name) for name in names}
    for index, step in steps:
        _check_uses(index, step, context, checked.ancestors[step["name"]], problem)
    for name in _mapping(data.get("answers")):
        if name.split("@")[0].split("/")[0] not in names:  # step, step@host, step/batch2
            problem(("answers", name), f"an answer for {name!r}, which is no step"
                    f"{_suggest(name, names)}", key=True)
    return checked, problems


def _check_names(document: Document, steps: list[tuple[int, dict[str, Any]]],
                 context: dict[str, Any], problem: Report) -> dict[str, int]:
    """Each step's name, once, and a name that is no context key: name -> index."""
    names: dict[str, int] = {}
    for index, step in steps:
        name = step["name"]
        if name in names:
            problem(("steps", index, "name"), f"the step name {name!r} is used twice (first "
                    f"at line {document.at(('steps', names[name], 'name'), '').line})")
            continue
        names[name] = index
        if name in context:
            problem(("steps", index, "name"), f"the step {name!r} has the name of a context "
                    f"key: in templates {{{name}}} would mean both")
    for index, step in steps:
        for position, phase in enumerate(_list(step.get("phases"))):
            name = phase.get("name") if isinstance(phase, dict) else None
            if isinstance(name, str) and (name in names or name in context) \
                    and name != step["name"]:
                problem(("steps", index, "phases", position, "name"), f"the phase {name!r} "
                        f"has the name of a {'step' if name in names else 'context key'}: in "
                        f"templates {{{name}}} would mean both")
    return names


def _check_needs(index: int, step: dict[str, Any], names: dict[str, int],
                 needs: dict[str, set[str]], problem: Report) -> None:
    """A step's needs name other steps; each is added to ``needs``."""
    for position, need in enumerate(_list(step.get("needs"))):
        if not isinstance(need, str):
            continue
        if need not in names:
            problem(("steps", index, "needs", position),
                    f"needs {need!r}, which is no step{_suggest(need, names)}")
        elif need == step["name"]:
            problem(("steps", index, "needs", position), "a step cannot need itself")
        else:
            needs[step["name"]].add(need)


def _check_uses(index: int, step: dict[str, Any], context: dict[str, Any],
                ancestors: set[str], problem: Report) -> None:
    """What a step's templates and ``when`` use is there: context keys, and the values of
    the steps it needs (directly or further up)."""
    usable = set(context) | ancestors
    if "host" in step or "hosts" in step:
        usable.add("host")  # the step's host
    _check_templates(("steps", index), step, usable, problem)
    for position, phase in enumerate(_list(step.get("phases"))):
        if isinstance(phase, dict):
            _check_templates(("steps", index, "phases", position), phase, usable, problem)
    when = step.get("when")
    if isinstance(when, dict) and ("step" in when) == ("key" in when):
        problem(("steps", index, "when"), "when looks at one step: or one key: (a "
                "context value), then equals:, not_equals: or in:")
    elif isinstance(when, dict) and isinstance(when.get("key"), str):
        if when["key"] not in context:
            problem(("steps", index, "when", "key"), f"when looks at the context key "
                    f"{when['key']!r}, which the context does not have"
                    f"{_suggest(when['key'], context)}")
    elif isinstance(when, dict) and isinstance(when.get("step"), str):
        if when["step"] not in ancestors:
            problem(("steps", index, "when", "step"),
                    f"when looks at {when['step']!r}, which is not a step this one "
                    f"needs (directly or further up){_suggest(when['step'], ancestors)}")


def _ancestors(needs: dict[str, set[str]], name: str) -> set[str]:
    """The steps ``name`` needs, directly or further up."""
    found: set[str] = set()
    waiting = list(needs[name])
    while waiting:
        need = waiting.pop()
        if need not in found:
            found.add(need)
            waiting.extend(needs[need])
    return found


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """A list the schema accepts; anything else (which the schema reports) as empty."""
    return value if isinstance(value, list) else []


def _check_step(index: int, step: dict[str, Any], groups: dict[str, Any],
                problem: Callable[..., None]) -> None:
    here: Path = ("steps", index)
    kinds = [kind for kind in KINDS if kind in step]
    if not kinds:
        problem(here, f"the step {step['name']!r} does nothing: give it one of "
                f"{', '.join(KINDS)}")
    elif len(kinds) > 1:
        problem((*here, kinds[1]), f"a step is one of {', '.join(KINDS)}; this one has "
                f"{' and '.join(kinds)}", key=True)
    if kinds and kinds[0] not in ("run", "phases"):
        for option in _COMMAND_ONLY:
            if option in step:
                problem((*here, option), f"{option!r} applies to run steps, not to "
                        f"{kinds[0]!r} steps", key=True)
    if "reply_needed" in step and "instruction" not in step:
        problem((*here, "reply_needed"), "'reply_needed' applies to instruction steps",
                key=True)
    if "choices" in step and "ask" not in step:
        problem((*here, "choices"), "'choices' applies to ask steps", key=True)
    if "host" in step and "hosts" in step:
        problem((*here, "hosts"), "give host (one) or hosts (one step each), not both",
                key=True)
    for option in ("user", "port", "ssh_options"):
        if option in step and "host" not in step and "hosts" not in step:
            problem((*here, option), f"{option!r} applies to a step with host or hosts",
                    key=True)
    _check_rolling(here, step, groups, problem)
    if "limit" in step and "hosts" not in step:
        problem((*here, "limit"), "'limit' applies to a step with hosts", key=True)
    if "limit" in step and "pool_size" in step:
        problem((*here, "pool_size"), "give limit or pool_size, not both", key=True)
    elif "pool_size" in step and "pool" not in step:
        problem((*here, "pool_size"), "'pool_size' needs a pool to size", key=True)
    if "raw" in step and not step.get("shell"):
        problem((*here, "raw"), "'raw' applies to shell: true commands (an argument list "
                "takes each value as one argument anyway)", key=True)
    if "shell" in step and isinstance(step.get("run"), list):
        problem((*here, "shell"), "'shell' applies to a string command, not an argument "
                "list", key=True)
    hosts = step.get("hosts")
    if isinstance(hosts, str) and hosts not in groups:
        problem((*here, "hosts"), f"no host group {hosts!r} in host_groups"
                f"{_suggest(hosts, groups)}")
    elif isinstance(hosts, list):
        twice = sorted({h for h in hosts if hosts.count(h) > 1})
        if twice:
            problem((*here, "hosts"), f"these hosts are listed more than once: {twice}")
    for tag in _mapping(step.get("tags")):
        if tag in _RESERVED_TAGS or tag in STEP_PROPERTIES:
            problem((*here, "tags", tag), f"the tag {tag!r} is set by trail or is a step "
                    "option; choose another name", key=True)


def _check_rolling(here: Path, step: dict[str, Any], groups: dict[str, Any],
                   problem: Callable[..., None]) -> None:
    """A rolling update's options: on hosts, sizes that fit, no ``when``."""
    rolling = [option for option in _ROLLING if option in step]
    for option in (*_ROLLING, "max_fail", "on_max_fail"):
        if option in step and "hosts" not in step:
            problem((*here, option), f"{option!r} applies to a step with hosts (a rolling "
                    f"update)", key=True)
            return
    for option in ("max_fail", "on_max_fail"):
        if option in step and not rolling:
            problem((*here, option), f"{option!r} applies to a rolling update: give batch, "
                    f"canary or phases too", key=True)
    if rolling and "when" in step:
        problem((*here, "when"), "a rolling update cannot be conditional (when:): put the "
                "condition on a step above it", key=True)
    hosts = step.get("hosts")
    names = groups.get(hosts) if isinstance(hosts, str) else hosts
    if rolling and isinstance(names, list) and all(isinstance(h, str) for h in names):
        try:
            cut_into_batches(names, step.get("batch"), step.get("canary"))
        except ValueError as exc:
            problem((*here, "canary" if "canary" in str(exc) else "batch"), str(exc))
        except TypeError:
            pass  # a wrong type: the schema says so


def _check_templates(here: Path, step: dict[str, Any], usable: set[str],
                     problem: Callable[..., None]) -> None:
    texts: list[tuple[Path, str]] = []
    run = step.get("run")
    if isinstance(run, str) and step.get("shell"):
        run = shell_template(run)
    if isinstance(run, str):
        texts.append(((*here, "run"), run))
    elif isinstance(run, list):
        texts.extend(((*here, "run", i), item) for i, item in enumerate(run)
                     if isinstance(item, str))
    for kind in ("instruction", "ask"):
        if isinstance(step.get(kind), str):
            texts.append(((*here, kind), step[kind]))
    for path, text in texts:
        try:
            names = fields(text)
        except ValueError as exc:
            problem(path, f"a bad template ({exc}); write {{{{ and }}}} for literal braces")
            continue
        for name in names:
            if not name or name.isdigit():
                problem(path, "a template placeholder needs a name: {key}")
            elif root(name) == "host" and "host" not in usable:
                problem(path, "the template names 'host', which only a step with host or "
                        "hosts has")
            elif root(name) not in usable:
                problem(path, f"the template names {root(name)!r}, which is neither a "
                        f"context key nor a step this one needs{_suggest(root(name), usable)}")
    if isinstance(run, str) and step.get("shell"):
        for name in quoted_placeholders(run):
            if root(name) not in _list(step.get("raw")):
                problem((*here, "run"), f"{{{name}}} stands inside quotes in a shell "
                        "command: drop the quotes (trail quotes the value) or list it under raw")
    elif isinstance(run, str):
        try:
            shlex.split(run)
        except ValueError as exc:
            problem((*here, "run"), f"the command does not split into words: {exc}")


def _cycles(needs: dict[str, set[str]], order: dict[str, int]) -> list[list[str]]:
    """A cycle per knot of ``needs`` (step -> what it needs), from its first step in the
    file, knots in file order; none, most often, found without networkx."""
    waiting_on = {name: len(needed) for name, needed in needs.items()}
    needed_by: dict[str, list[str]] = {name: [] for name in needs}
    for name, needed in needs.items():
        for need in needed:
            needed_by[need].append(name)
    ready = [name for name, count in waiting_on.items() if count == 0]
    while ready:  # Kahn's walk: what it never reaches is on a cycle, or below one
        for later in needed_by[ready.pop()]:
            waiting_on[later] -= 1
            if waiting_on[later] == 0:
                ready.append(later)
    if not any(waiting_on.values()):
        return []
    import networkx as nx  # only to name the cycles

    graph = nx.DiGraph()
    graph.add_nodes_from(needs)
    graph.add_edges_from((name, need) for name, needed in needs.items() for need in needed)
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            start = min(component, key=order.__getitem__)
            cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component), start)]
            at = cycle.index(start) if start in cycle else 0
            cycles.append(cycle[at:] + cycle[:at])
    return sorted(cycles, key=lambda cycle: order[cycle[0]])


@contextmanager
def _importable_from(directory: FilePath) -> Iterator[None]:
    """Modules beside the runbook import, as they would beside a Python runbook run as a
    script."""
    entry = str(directory.resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


def _import(spec: str, base: FilePath, path: Path, report: Callable[..., None]) -> Any:
    def problem(message: str) -> None:
        report(path, message)

    module_name, _, attribute = spec.partition(":")
    try:
        with _importable_from(base):
            module = importlib.import_module(module_name)
    except Exception as exc:  # any error a module raises on import is the author's to see
        problem(f"call {spec!r} does not import: {type(exc).__name__}: {exc}")
        return None
    function = getattr(module, attribute, None)
    if not callable(function):
        problem(f"call {spec!r}: the module {module_name!r} has no function {attribute!r}"
                f"{_suggest(attribute, [n for n in dir(module) if not n.startswith('_')])}")
        return None
    return function

