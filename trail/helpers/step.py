"""AutoTrail's ``autotrail.helpers.step`` names: the helpers for writing steps."""

from trail.errors import InstructionNotCompletedError, ShellCommandFailedError
from trail.layer2.steps import (
    Instruction,
    ShellCommand,
    accepts_context,
    accepts_environment,
    accepts_nothing,
    apply_object_attributes_to_template,
    create_conditional_step,
    extraction_wrapper,
    make_context_attribute_based_templating_function,
    make_simple_templating_function,
)

__all__ = [
    "Instruction",
    "InstructionNotCompletedError",
    "ShellCommand",
    "ShellCommandFailedError",
    "accepts_context",
    "accepts_environment",
    "accepts_nothing",
    "apply_object_attributes_to_template",
    "create_conditional_step",
    "extraction_wrapper",
    "make_context_attribute_based_templating_function",
    "make_simple_templating_function",
]
