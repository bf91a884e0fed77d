"""What users touch, on top of the engine (imports trail.layer1 and trail.core).

- ``steps/``: what runs inside steps (ShellCommand and its stop wrapper, ssh, hosts,
  Instruction, conditionals, templating, the shared context).
- ``server.py``, ``client.py``, ``mirror.py``: serving a trail, steering it, and turning
  its events into status rows for every view.
- ``cli/``: the ``trail`` command, the live view, the REPL.
- ``diagram.py``, ``monitor.py``, ``runbook.py``: diagrams, monitor_trail, runbook files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trail._lazy import lazy_names

__all__ = [
    "EventStream",
    "HostUnreachableError",
    "Instruction",
    "InstructionNotCompletedError",
    "InteractiveTrail",
    "Names",
    "Hosts",
    "RemoteCommand",
    "Rollout",
    "ShellCommand",
    "ShellCommandFailedError",
    "ShellResult",
    "StatusMirror",
    "TrailClient",
    "TrailServer",
    "accepts_context",
    "accepts_environment",
    "accepts_nothing",
    "apply_object_attributes_to_template",
    "create_conditional_step",
    "definition_dot",
    "extraction_wrapper",
    "bind_calls",
    "interactive",
    "live_dot",
    "make_context_attribute_based_templating_function",
    "make_simple_templating_function",
    "monitor_trail",
    "on_hosts",
    "rolling",
    "render",
    "threadsafe_class",
    "write_trail_definition_as_dot",
]

# Names load from their modules when first used (PEP 562): a runbook's ``from trail import
# Step, RemoteCommand`` does not pay for the REPL, diagrams, monitor or the web page.
_LAZY: dict[str, str] = {
    "EventStream": "trail.layer2.stream",
    "HostUnreachableError": "trail.layer2.steps",
    "Hosts": "trail.layer2.steps",
    "Instruction": "trail.layer2.steps",
    "InstructionNotCompletedError": "trail.layer2.steps",
    "InteractiveTrail": "trail.layer2.cli.repl",
    "Names": "trail.layer2.cli.repl",
    "RemoteCommand": "trail.layer2.steps",
    "Rollout": "trail.layer2.steps",
    "ShellCommand": "trail.layer2.steps",
    "ShellCommandFailedError": "trail.layer2.steps",
    "ShellResult": "trail.layer2.steps",
    "StatusMirror": "trail.layer2.mirror",
    "TrailClient": "trail.layer2.client",
    "TrailServer": "trail.layer2.server",
    "accepts_context": "trail.layer2.steps",
    "accepts_environment": "trail.layer2.steps",
    "accepts_nothing": "trail.layer2.steps",
    "apply_object_attributes_to_template": "trail.layer2.steps",
    "bind_calls": "trail.layer2.cli.repl",
    "create_conditional_step": "trail.layer2.steps",
    "definition_dot": "trail.layer2.diagram",
    "extraction_wrapper": "trail.layer2.steps",
    "interactive": "trail.layer2.cli.repl",
    "live_dot": "trail.layer2.diagram",
    "make_context_attribute_based_templating_function": "trail.layer2.steps",
    "make_simple_templating_function": "trail.layer2.steps",
    "monitor_trail": "trail.layer2.monitor",
    "on_hosts": "trail.layer2.steps",
    "render": "trail.layer2.diagram",
    "rolling": "trail.layer2.steps",
    "threadsafe_class": "trail.layer2.steps",
    "write_trail_definition_as_dot": "trail.layer2.diagram",
}


__getattr__, __dir__ = lazy_names(globals(), _LAZY)


if TYPE_CHECKING:
    from trail.layer2.cli.repl import InteractiveTrail, Names, bind_calls, interactive
    from trail.layer2.client import TrailClient
    from trail.layer2.diagram import (
        definition_dot,
        live_dot,
        render,
        write_trail_definition_as_dot,
    )
    from trail.layer2.mirror import StatusMirror
    from trail.layer2.monitor import monitor_trail
    from trail.layer2.server import TrailServer
    from trail.layer2.steps import (
        Hosts,
        HostUnreachableError,
        Instruction,
        InstructionNotCompletedError,
        RemoteCommand,
        Rollout,
        ShellCommand,
        ShellCommandFailedError,
        ShellResult,
        accepts_context,
        accepts_environment,
        accepts_nothing,
        apply_object_attributes_to_template,
        create_conditional_step,
        extraction_wrapper,
        make_context_attribute_based_templating_function,
        make_simple_templating_function,
        on_hosts,
        rolling,
        threadsafe_class,
    )
    from trail.layer2.stream import EventStream
