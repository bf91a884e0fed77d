"""Steps on other machines: RemoteCommand, and ``on_hosts`` to fan one command out over a
fleet, one step per host.

Why a command helper, not an ``executor="ssh"``: an executor runs a step's Python action
function, which on another host would need Python, trail and the runbook installed there:
an agent. A command needs only sshd and sh. So the unit that crosses to a host is a
command, and the step around it (its retries, timeout, prompts, tags) stays local, steered
like any other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from trail.core.step import Step
from trail.layer2.steps.shell import Command, ShellCommand

CommandSpec = Command | Callable[[Any, Any], Command | None]


class RemoteCommand(ShellCommand):
    """A ShellCommand on ``host`` (required): ``RemoteCommand("drain", "systemctl stop
    app", host="web1", sudo=True)``. Every ShellCommand option applies."""

    def __init__(self, name: str, command_function: CommandSpec, *, host: str,
                 **options: Any) -> None:
        super().__init__(name, command_function, host=host, **options)


_SHELL_OPTIONS = frozenset(inspect.signature(ShellCommand.__init__).parameters) - {
    "self", "name", "command_function"}


def on_hosts(
    hosts: Iterable[str],
    command: CommandSpec | Callable[[str], CommandSpec],
    *,
    name: str,
    limit: int | None = None,
    per_host: bool = False,
    **options: Any,
) -> list[Step]:
    """One step per host running ``command`` there, named ``name@host`` and tagged
    ``host=...``, so ``pause(host="db2")`` or ``skip(host="db3")`` steer one host.

    ``command`` is what every host runs (a string, argv list or ``(trail_env, context)``
    function, as for ShellCommand); with ``per_host=True`` it is a function of the host
    name returning that. ``limit`` lets at most that many of these steps run at once (a
    pool named ``name``, sized by the steps; the server's ``pools`` may override it).
    Other keyword arguments go to ShellCommand when they are its options (user, port,
    ssh_options, sudo, timeout, ...) and to the Step otherwise (retries, pause_on_fail,
    tags, ...). Link the list like any steps: ``check >> on_hosts(...) >> verify``.
    """
    hosts = list(hosts)
    if not hosts:
        raise ValueError(f"on_hosts({name!r}) got no hosts")
    twice = sorted({host for host in hosts if hosts.count(host) > 1})
    if twice:
        raise ValueError(f"on_hosts({name!r}) got these hosts more than once: {twice}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a whole number >= 1: {limit!r}")
    for reserved in ("host", "name"):
        if reserved in options:
            raise ValueError(f"on_hosts sets each step's {reserved!r} itself")
    shell_options = {k: v for k, v in options.items() if k in _SHELL_OPTIONS}
    step_options = {k: v for k, v in options.items() if k not in _SHELL_OPTIONS}
    if limit is not None:
        step_options.setdefault("pool", name)
        step_options["pool_size"] = limit
    steps = []
    for host in hosts:
        spec: Any = command(host) if per_host else command  # type: ignore[call-arg,operator]
        step_name = f"{name}@{host}"
        action = ShellCommand(step_name, spec, host=host, **shell_options)
        steps.append(Step(action, name=step_name, host=host, **step_options))
    return steps
