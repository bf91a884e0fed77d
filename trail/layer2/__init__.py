"""What users touch: TrailServer, TrailClient, step helpers, InteractiveTrail, diagrams."""

from trail.layer2.client import EventStream, TrailClient
from trail.layer2.context import threadsafe_class
from trail.layer2.diagram import (
    definition_dot,
    live_dot,
    render,
    write_trail_definition_as_dot,
)
from trail.layer2.helpers import (
    Instruction,
    InstructionNotCompletedError,
    accepts_context,
    accepts_environment,
    accepts_nothing,
    apply_object_attributes_to_template,
    create_conditional_step,
    extraction_wrapper,
    make_context_attribute_based_templating_function,
    make_simple_templating_function,
)
from trail.layer2.hosts import RemoteCommand, on_hosts
from trail.layer2.interactive import InteractiveTrail, Names, interactive
from trail.layer2.monitor import monitor_trail
from trail.layer2.server import TrailServer
from trail.layer2.shell import HostUnreachableError, ShellCommand, ShellCommandFailedError

__all__ = [
    "EventStream",
    "HostUnreachableError",
    "Instruction",
    "InstructionNotCompletedError",
    "InteractiveTrail",
    "Names",
    "RemoteCommand",
    "ShellCommand",
    "ShellCommandFailedError",
    "TrailClient",
    "TrailServer",
    "accepts_context",
    "accepts_environment",
    "accepts_nothing",
    "apply_object_attributes_to_template",
    "create_conditional_step",
    "definition_dot",
    "extraction_wrapper",
    "interactive",
    "live_dot",
    "make_context_attribute_based_templating_function",
    "make_simple_templating_function",
    "monitor_trail",
    "on_hosts",
    "render",
    "threadsafe_class",
    "write_trail_definition_as_dot",
]
