"""Steps on other machines: RemoteCommand; ``on_hosts`` to fan one command out over a
fleet, one step per host; ``rolling`` to roll phases (drain, restart, check) through a
fleet batch by batch; and ``Hosts``, a fleet with the options its commands share.

Why a command helper, not an ``executor="ssh"``: an executor runs a step's Python action
function, which on another host would need Python, trail and the runbook installed there:
an agent. A command needs only sshd and sh. So the unit that crosses to a host is a
command, and the step around it (its retries, timeout, prompts, tags) stays local, steered
like any other.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from trail.core.step import Step
from trail.layer2.steps.helpers import apply_object_attributes_to_template
from trail.layer2.steps.rollout import (
    Rollout,
    Size,
    batch_tags,
    check_max_fail,
    cut_into_batches,
    link_batches,
)
from trail.layer2.steps.shell import Command, ShellCommand
from trail.layer2.steps.ssh import ssh_options_argv

CommandSpec = Command | Callable[..., Command | None]
# A phase of a rolling update: (name, command) or (name, command, {options}).
Phase = tuple[str, Any] | tuple[str, Any, Mapping[str, Any]]


class RemoteCommand(ShellCommand):
    """A ShellCommand on ``host`` (required): ``RemoteCommand("drain", "systemctl stop
    app", host="web1", sudo=True)``. Every ShellCommand option applies."""

    def __init__(self, name: str, command_function: CommandSpec, *, host: str,
                 **options: Any) -> None:
        super().__init__(name, command_function, host=host, **options)


_SHELL_OPTIONS = frozenset(inspect.signature(ShellCommand.__init__).parameters) - {
    "self", "name", "command_function"}
_ROLLING_OPTIONS = ("batch", "max_fail", "canary", "on_max_fail", "limit", "per_host")


class Hosts:
    """A fleet: host names, and the options every command on them shares, given once.

    ``Hosts(["web1", "web2"], user="deploy", ssh_options={"ProxyJump": "bastion"},
    sudo=True, timeout=120)``. The options are ShellCommand's (user, port, ssh_options,
    sudo, sudo_user, env, cwd, timeout, ...) or Step's (retries, retry_on, tags, ...).
    ``fleet.on_hosts(...)`` and ``fleet.rolling(...)`` (or ``on_hosts(fleet, ...)``) use
    them; an option given there wins, except ``ssh_options``, which add to the fleet's (and
    come first, so theirs win in ssh). It iterates as its host names.
    """

    def __init__(self, hosts: Iterable[str], **defaults: Any) -> None:
        if isinstance(hosts, str):
            raise TypeError(f"Hosts takes a list of host names, not the string {hosts!r}")
        self.names = tuple(hosts)
        if not self.names:
            raise ValueError("Hosts got no hosts")
        twice = sorted({host for host in self.names if self.names.count(host) > 1})
        if twice:
            raise ValueError(f"Hosts got these hosts more than once: {twice}")
        for bad in ("host", "name", *_ROLLING_OPTIONS):
            if bad in defaults:
                raise ValueError(f"{bad!r} is not a fleet-wide option: give it to on_hosts "
                                 f"or rolling")
        self.defaults = defaults

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Hosts({list(self.names)!r}, **{self.defaults!r})"

    def subset(self, hosts: Iterable[str]) -> Hosts:
        """Some of the fleet's hosts, with the same options."""
        chosen = list(hosts)
        strangers = [host for host in chosen if host not in self.names]
        if strangers:
            raise ValueError(f"not hosts of this fleet: {strangers}")
        return Hosts(chosen, **self.defaults)

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The fleet's options with ``given`` over them."""
        return over(self.defaults, given)

    def remote_command(self, name: str, command: CommandSpec, *, host: str,
                       **options: Any) -> RemoteCommand:
        """A RemoteCommand on one host with the fleet's command options (a Step's options
        of the fleet do not apply: give them to the Step)."""
        merged = {k: v for k, v in self.options(options).items() if k in _SHELL_OPTIONS}
        return RemoteCommand(name, _for_host(command, host), host=host, **merged)

    @overload
    def on_hosts(self, command: Any, *, name: str, batch: None = None,
                 canary: None = None, **options: Any) -> list[Step]: ...

    @overload
    def on_hosts(self, command: Any, *, name: str, batch: Size | Sequence[Size] | None = None,
                 canary: Size | None = None, **options: Any) -> list[Step] | Rollout: ...

    def on_hosts(self, command: Any, *, name: str, batch: Any = None, canary: Any = None,
                 **options: Any) -> list[Step] | Rollout:
        """``on_hosts`` over this fleet."""
        return on_hosts(self, command, name=name, batch=batch, canary=canary, **options)

    def rolling(self, phases: Sequence[Phase] | Mapping[str, Any], *, name: str,
                **options: Any) -> Rollout:
        """``rolling`` over this fleet."""
        return rolling(self, phases, name=name, **options)


def over(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Options ``given`` over ``base``; ssh_options add up, the given ones first (ssh takes
    the first value of an option)."""
    merged = {**base, **given}
    if "ssh_options" in given and "ssh_options" in base:
        merged["ssh_options"] = [*ssh_options_argv(given["ssh_options"]),
                                 *ssh_options_argv(base["ssh_options"])]
    return merged


def _fleet(hosts: Iterable[str] | Hosts, options: dict[str, Any],
           what: str) -> tuple[list[str], dict[str, Any]]:
    """The host names, and the options with a fleet's defaults under them."""
    if isinstance(hosts, str):
        raise TypeError(f"{what} takes a list of host names, not the string {hosts!r}")
    if isinstance(hosts, Hosts):
        return list(hosts.names), hosts.options(options)
    names = list(hosts)
    if not names:
        raise ValueError(f"{what} got no hosts")
    twice = sorted({host for host in names if names.count(host) > 1})
    if twice:
        raise ValueError(f"{what} got these hosts more than once: {twice}")
    return names, options


class HostTemplate:
    """A command template filled for one host: ``{host}`` is its name, the other
    placeholders come from the context as in any ShellCommand template."""

    def __init__(self, template: str, host: str) -> None:
        self.template = template
        self.host = host

    def __call__(self, trail_env: Any, context: Any) -> str:
        return apply_object_attributes_to_template(self.template, _WithHost(context, self.host))


class HostFunction:
    """A command function with a ``host`` parameter, given the step's host."""

    def __init__(self, function: Callable[..., Any], host: str) -> None:
        self.function = function
        self.host = host

    def __call__(self, trail_env: Any, context: Any) -> Any:
        return self.function(trail_env, context, host=self.host)


def with_host(context: Any, host: str) -> Mapping[str, Any]:
    """The context as a command template for ``host`` sees it: ``{host}`` is the host."""
    return _WithHost(context, host)


class _WithHost(Mapping[str, Any]):
    """The context as a template sees it, with ``host`` the step's host."""

    def __init__(self, context: Any, host: str) -> None:
        self.context = context
        self.host = host

    def __getitem__(self, key: str) -> Any:
        if key == "host":
            return self.host
        if isinstance(self.context, Mapping):
            return self.context[key]
        try:
            return getattr(self.context, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        if key == "host":
            return True
        if isinstance(self.context, Mapping):
            return key in self.context
        return isinstance(key, str) and hasattr(self.context, key)

    def __iter__(self) -> Iterator[str]:
        keys = list(self.context) if isinstance(self.context, Mapping) else []
        return iter(["host", *(key for key in keys if key != "host")])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __repr__(self) -> str:
        return repr(self.context)


def _names_host(template: str) -> bool:
    try:
        return any(name is not None and name.split(".")[0].split("[")[0] == "host"
                   for _, name, _, _ in string.Formatter().parse(template))
    except ValueError:  # a lone brace: the ShellCommand's template error says so
        return False


def _takes_host(function: Callable[..., Any]) -> bool:
    try:
        return "host" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _for_host(command: Any, host: str) -> Any:
    """The command as ``host`` runs it: ``{host}`` in a string template or an argument
    list is the host's name; a command function with a ``host`` parameter gets it."""
    if isinstance(command, str):
        return HostTemplate(command, host) if _names_host(command) else command
    if callable(command):
        return HostFunction(command, host) if _takes_host(command) else command
    if any("{host}" in str(arg) for arg in command):
        return [str(arg).replace("{host}", host) for arg in command]
    return command


def _split(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options of the command, and of the Step (the rest: Step options and tags)."""
    for reserved in ("host", "name"):
        if reserved in options:
            raise ValueError(f"on_hosts and rolling set each step's {reserved!r} themselves")
    shell = {k: v for k, v in options.items() if k in _SHELL_OPTIONS}
    step = {k: v for k, v in options.items() if k not in _SHELL_OPTIONS}
    # A host's step waits on its ssh: a thread is enough, where a forked copy of the server
    # per host costs megabytes each (100 hosts: 538 MiB against 144 for bare ssh). The stop
    # wrapper stops the remote command either way, and a crash closes its input.
    step.setdefault("executor", "thread")
    return shell, step


@overload
def on_hosts(hosts: Iterable[str] | Hosts, command: Any, *, name: str,
             limit: int | None = None, per_host: bool = False, batch: None = None,
             canary: None = None, **options: Any) -> list[Step]: ...


@overload
def on_hosts(hosts: Iterable[str] | Hosts, command: Any, *, name: str,
             limit: int | None = None, per_host: bool = False,
             batch: Size | Sequence[Size] | None = None, canary: Size | None = None,
             **options: Any) -> list[Step] | Rollout: ...


def on_hosts(
    hosts: Iterable[str] | Hosts,
    command: Any,
    *,
    name: str,
    limit: int | None = None,
    per_host: bool = False,
    batch: Any = None,
    canary: Any = None,
    **options: Any,
) -> list[Step] | Rollout:
    """One step per host running ``command`` there, named ``name@host`` and tagged
    ``host=...``, so ``pause(host="db2")`` or ``skip(host="db3")`` steer one host.

    ``command`` is what every host runs: a string (a template: ``{host}`` is the host's
    name, other ``{key}`` the context's), an argv list (``{host}`` in an argument is
    replaced), or a ``(trail_env, context)`` function (given a ``host`` parameter, it gets
    the host's name); with ``per_host=True`` it is a function of the host name returning
    one of those. ``limit`` lets at most that many of these steps run at once (a pool named
    ``name``, sized by the steps; the server's ``pools`` may override it). Other keyword
    arguments go to ShellCommand when they are its options (user, port, ssh_options, sudo,
    timeout, ...) and to the Step otherwise (retries, pause_on_fail, tags, ...); the steps
    run on the thread executor unless ``executor=`` says otherwise. ``hosts``
    may be a ``Hosts`` fleet, whose options apply. Link the list like any steps:
    ``check >> on_hosts(...) >> verify``.

    With ``batch`` (or ``canary``) it is a rolling update of one phase: see ``rolling``
    (``max_fail`` and ``on_max_fail`` apply), and it returns the Rollout.
    """
    if batch is not None or canary is not None:
        return rolling(hosts, [(name, command)], name=name, batch=batch, canary=canary,
                       limit=limit, per_host=per_host, **options)
    for rolling_only in ("max_fail", "on_max_fail"):
        if rolling_only in options:
            raise ValueError(f"{rolling_only} applies to a rolling update: give batch= "
                             f"(or canary=) too")
    names, options = _fleet(hosts, options, f"on_hosts({name!r})")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a whole number >= 1: {limit!r}")
    shell_options, step_options = _split(options)
    if limit is not None:
        step_options.setdefault("pool", name)
        step_options["pool_size"] = limit
    steps = []
    for host in names:
        spec: Any = command(host) if per_host else command
        step_name = f"{name}@{host}"
        action = ShellCommand(step_name, _for_host(spec, host), host=host, **shell_options)
        steps.append(Step(action, name=step_name, host=host, **step_options))
    return steps


def _phases(phases: Sequence[Phase] | Mapping[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    items = list(phases.items()) if isinstance(phases, Mapping) else list(phases)
    if not items:
        raise ValueError("rolling got no phases: give [(name, command), ...]")
    found: list[tuple[str, Any, dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise ValueError(f"a phase is (name, command) or (name, command, {{options}}), "
                             f"not {item!r}")
        phase, command = item[0], item[1]
        extra = dict(item[2]) if len(item) == 3 else {}  # type: ignore[misc]
        if not isinstance(phase, str) or not phase or "@" in phase or "/" in phase:
            raise ValueError(f"a phase's name is a word (no @ or /): {phase!r}")
        if any(phase == other for other, _, _ in found):
            raise ValueError(f"two phases are named {phase!r}")
        found.append((phase, command, extra))
    return found


def rolling(
    hosts: Iterable[str] | Hosts,
    phases: Sequence[Phase] | Mapping[str, Any],
    *,
    name: str,
    batch: Size | Sequence[Size] | None = None,
    max_fail: Size = 0,
    canary: Size | None = None,
    on_max_fail: str = "ask",
    limit: int | None = None,
    per_host: bool = False,
    **options: Any,
) -> Rollout:
    """A rolling update: ``phases`` run on each host in order (``drain@web1`` ->
    ``restart@web1`` -> ``check@web1``), a batch of hosts at a time; the next batch starts
    only when every host of this one is through every phase.

    ``rolling(fleet, [("drain", cmd), ("restart", cmd, {"sudo": True}), ("check", cmd)],
    name="deploy", batch=10, max_fail=1, canary=1)``. ``phases`` is a list of ``(name,
    command)`` or ``(name, command, {options})`` (or a mapping name -> command); commands
    are as for ``on_hosts`` (``{host}`` is the host's name).

    - ``batch``: hosts per batch, a number or a percentage of the fleet ("20%"), or a list
      of sizes that ramps up (``[1, 5, "25%"]``; the last repeats); None: all at once.
    - ``canary``: this many hosts (or a percentage) go first, alone; if one of them fails,
      the rollout stops there.
    - ``max_fail``: how many hosts of a batch may fail (a number or a percentage of the
      batch; default 0) with the rollout going on. Beyond it the batch's gate step asks the
      operator ("3 of 10 hosts of batch 2 of 5 failed (...). Go on with the rollout? yes /
      no"); with ``on_max_fail="stop"`` it stops the rollout at once (Ansible's
      any_errors_fatal is ``max_fail=0, on_max_fail="stop"``). A stopped rollout's gate
      fails (RolloutStoppedError) and nothing below it runs.

    A host fails when one of its phase steps fails: its later phases do not run, and its
    failed step stays Failed (host steps do not pause on failure here, unless
    ``pause_on_fail=True`` is given, when the batch waits for the operator to settle them).
    Steps are tagged ``host``, ``phase``, ``batch`` (a number, or "canary") and
    ``rollout=name``: ``trail pause batch=3 --yes`` holds the third batch. Each batch's gate
    is the step ``name/canary``, ``name/batch1``, ...; the Rollout returned links like a
    step: ``check >> rolling(...) >> report``. Other options are as for ``on_hosts``
    (``limit``: at most that many host steps at once).
    """
    names, options = _fleet(hosts, options, f"rolling({name!r})")
    if "/" in name or "@" in name:
        raise ValueError(f"a rollout's name is a word (no @ or /): {name!r}")
    plan = cut_into_batches(names, batch, canary)
    max_fail = check_max_fail(max_fail)
    if on_max_fail not in ("ask", "stop"):
        raise ValueError(f"on_max_fail is 'ask' or 'stop': {on_max_fail!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a whole number >= 1: {limit!r}")
    steps_of = _phases(phases)
    single = len(steps_of) == 1 and steps_of[0][0] == name
    chains: dict[str, list[Step]] = {}
    for label, batch_hosts in plan:
        for host in batch_hosts:
            for phase, command, extra in steps_of:
                shell_options, step_options = _split(over(options, extra))
                step_options.setdefault("pause_on_fail", False)  # the gate counts it
                if limit is not None:
                    step_options.setdefault("pool", name)
                    step_options["pool_size"] = limit
                tags = {**batch_tags(name, label), **({} if single else {"phase": phase})}
                step_name = f"{phase}@{host}"
                spec: Any = command(host) if per_host else command
                action = ShellCommand(step_name, _for_host(spec, host), host=host,
                                      **shell_options)
                chains.setdefault(host, []).append(
                    Step(action, name=step_name, host=host, **{**tags, **step_options}))
    return link_batches(name, plan, chains, max_fail, on_max_fail)
