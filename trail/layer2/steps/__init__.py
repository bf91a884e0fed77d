"""What runs inside steps: commands (here, under sudo, on hosts; fleets and rolling
updates over them), manual instructions, conditional branches, templating, and a context
shared by every step."""

from trail.errors import HostUnreachableError, InstructionNotCompletedError, ShellCommandFailedError
from trail.layer2.steps.context import threadsafe_class
from trail.layer2.steps.helpers import (
    Instruction,
    accepts_context,
    accepts_environment,
    accepts_nothing,
    apply_object_attributes_to_template,
    create_conditional_step,
    extraction_wrapper,
    make_context_attribute_based_templating_function,
    make_simple_templating_function,
)
from trail.layer2.steps.hosts import Hosts, RemoteCommand, Rollout, on_hosts, rolling
from trail.layer2.steps.shell import ShellCommand, ShellResult

__all__ = [
    "HostUnreachableError",
    "Hosts",
    "Instruction",
    "InstructionNotCompletedError",
    "RemoteCommand",
    "Rollout",
    "ShellCommand",
    "ShellResult",
    "ShellCommandFailedError",
    "accepts_context",
    "accepts_environment",
    "accepts_nothing",
    "apply_object_attributes_to_template",
    "create_conditional_step",
    "extraction_wrapper",
    "make_context_attribute_based_templating_function",
    "make_simple_templating_function",
    "on_hosts",
    "rolling",
    "threadsafe_class",
]
