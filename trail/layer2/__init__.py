"""What users touch, on top of the engine (imports trail.layer1 and trail.core).

- ``steps/``: what runs inside steps (ShellCommand and its stop wrapper, ssh, hosts,
  Instruction, conditionals, templating, the shared context).
- ``server.py``, ``client.py``, ``mirror.py``: serving a trail, steering it, and turning
  its events into status rows for every view.
- ``cli/``: the ``trail`` command, the live view, the REPL.
- ``diagram.py``, ``monitor.py``, ``runbook.py``: diagrams, monitor_trail, runbook files.
"""

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
