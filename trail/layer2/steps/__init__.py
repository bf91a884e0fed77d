"""What runs inside steps: commands (here, under sudo, on hosts; fleets and rolling
updates over them), manual instructions, conditional branches, templating, and a context
shared by every step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trail._lazy import lazy_names

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

_HELPERS = "trail.layer2.steps.helpers"
# Names load from their modules when first used (PEP 562): a runbook of commands does not
# pay for the shared context's process manager (multiprocessing), and the reverse.
_LAZY: dict[str, str] = {
    "HostUnreachableError": "trail.errors",
    "Hosts": "trail.layer2.steps.hosts",
    "Instruction": _HELPERS,
    "InstructionNotCompletedError": "trail.errors",
    "RemoteCommand": "trail.layer2.steps.hosts",
    "Rollout": "trail.layer2.steps.hosts",
    "ShellCommand": "trail.layer2.steps.shell",
    "ShellResult": "trail.layer2.steps.shell",
    "ShellCommandFailedError": "trail.errors",
    "accepts_context": _HELPERS,
    "accepts_environment": _HELPERS,
    "accepts_nothing": _HELPERS,
    "apply_object_attributes_to_template": _HELPERS,
    "create_conditional_step": _HELPERS,
    "extraction_wrapper": _HELPERS,
    "make_context_attribute_based_templating_function": _HELPERS,
    "make_simple_templating_function": _HELPERS,
    "on_hosts": "trail.layer2.steps.hosts",
    "rolling": "trail.layer2.steps.hosts",
    "threadsafe_class": "trail.layer2.steps.context",
}

__getattr__, __dir__ = lazy_names(globals(), _LAZY)

if TYPE_CHECKING:
    from trail.errors import (
        HostUnreachableError,
        InstructionNotCompletedError,
        ShellCommandFailedError,
    )
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
