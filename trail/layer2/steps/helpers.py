"""Step helpers with AutoTrail's names: conditional steps, argument extraction, templating,
manual instructions."""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from typing import Any

from trail.core.step import Step
from trail.errors import InstructionNotCompletedError

ActionFunction = Callable[[Any, Any], Any]


def create_conditional_step(action_function: ActionFunction, **tags: Any) -> Step:
    """A step that guards a branch: its strict progeny are skipped when it returns False
    or raises (AutoTrail only had "raises"). The step itself ends Succeeded (returned
    False: the branch was not needed) or Failed (raised), never paused."""
    return Step(action_function, pause_on_fail=False, skip_progeny_on_failure=True,
                conditional=True, **tags)


def extraction_wrapper(
    function_or_method: Callable[..., Any],
    parameter_extractors: Iterable[Callable[[Any, Any], Mapping[str, Any]]],
    function: bool = True,
    return_handlers: Iterable[Callable[[Any, Any], Any]] | None = None,
    return_value_extractor: Callable[[Any, Any], Any] = lambda value, context: value,
    exception_handlers: Iterable[tuple[type[BaseException], Callable[[Any, Any], Any]]]
    | None = None,
) -> Callable[..., Any]:
    """Turn a function with a readable signature into an action function.

    Each extractor gets ``(trail_env, context)`` and returns keyword arguments; their union
    is what the function is called with. ``return_handlers`` get ``(returned, context)``
    (to store results in the context); ``return_value_extractor`` makes the step's return
    value; ``exception_handlers`` are (class, handler) pairs tried in order, a handler's
    result becoming the return value. ``function=False`` wraps a method (self comes first).
    """
    extractors = list(parameter_extractors)
    handlers = list(return_handlers or [])
    on_error = list(exception_handlers or [])

    @wraps(function_or_method)
    def action(*args: Any) -> Any:
        if function:
            trail_env, context = args
            call = function_or_method
        else:
            owner, trail_env, context = args

            def call(**kwargs: Any) -> Any:
                return function_or_method(owner, **kwargs)

        arguments: dict[str, Any] = {}
        for extract in extractors:
            arguments.update(extract(trail_env, context))
        try:
            returned = call(**arguments)
        except Exception as exc:
            for error_class, handle in on_error:
                if isinstance(exc, error_class):
                    return handle(exc, context)
            raise
        for handle_return in handlers:
            handle_return(returned, context)
        return return_value_extractor(returned, context)

    return action


def accepts_context(func: Callable[[Any], Any]) -> ActionFunction:
    """An action function from ``func(context)``."""

    @wraps(func)
    def action(trail_env: Any, context: Any) -> Any:
        return func(context)

    return action


def accepts_environment(func: Callable[[Any], Any]) -> ActionFunction:
    """An action function from ``func(trail_env)``."""

    @wraps(func)
    def action(trail_env: Any, context: Any) -> Any:
        return func(trail_env)

    return action


def accepts_nothing(func: Callable[[], Any]) -> ActionFunction:
    """An action function from ``func()``."""

    @wraps(func)
    def action(trail_env: Any, context: Any) -> Any:
        return func()

    return action


def apply_object_attributes_to_template(template: str, value_object: Any) -> str:
    """Fill ``{field}`` placeholders from the object's attributes (or a mapping's keys).

    A missing value raises AttributeError naming the field and the object, so a typo in a
    runbook's template fails the step with a message that says which placeholder. A literal
    brace is written doubled: ``{{`` and ``}}`` (``"awk '{{print $1}}'"``, ``"${{HOME}}"``).
    """
    hint = ("; a command string is a template filled from the context: write a literal "
            "{ or } doubled, as {{ and }} (\"${{HOME}}\", \"awk '{{print $1}}'\")")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:  # a lone brace
        raise ValueError(f"the template {template!r} cannot be filled ({exc}){hint}") from None
    values = {}
    for name in fields:
        root = name.split(".")[0].split("[")[0]
        if root in values:
            continue
        if isinstance(value_object, Mapping) and root in value_object:
            values[root] = value_object[root]
            continue
        try:
            values[root] = getattr(value_object, root)
        except AttributeError as exc:
            raise AttributeError(
                f"the template {template!r} needs {root!r}, which the context "
                f"{value_object!r} does not have{hint}"
            ) from exc
    try:
        return template.format(**values)
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"the template {template!r} cannot be filled ({exc}){hint}") from None


def make_simple_templating_function(template: str) -> Callable[[Any, Any], str]:
    """A function ``(trail_env, context) -> str`` filling the template from the context."""

    def templating_function(trail_env: Any, context: Any) -> str:
        return apply_object_attributes_to_template(template, context)

    return templating_function


def make_context_attribute_based_templating_function(
    attribute_name: str, template: str, expected_value: Any = True, notify_user: bool = True
) -> Callable[[Any, Any], str | None]:
    """Like make_simple_templating_function, but only when ``context.<attribute_name>``
    equals ``expected_value``; otherwise None (nothing to do), told to the operator."""

    def templating_function(trail_env: Any, context: Any) -> str | None:
        value = (context[attribute_name] if isinstance(context, Mapping)
                 else getattr(context, attribute_name))
        if value == expected_value:
            return apply_object_attributes_to_template(template, context)
        if notify_user:
            trail_env.output(
                f'Nothing to do since "{attribute_name}" in context has the value: '
                f'"{value}" and the expected value is: "{expected_value}".'
            )
        return None

    return templating_function


def as_text_function(
    value: str | Callable[[Any, Any], Any],
) -> Callable[[Any, Any], Any]:
    """A template string or a ``(trail_env, context)`` function, as the function."""
    if callable(value):
        return value
    if isinstance(value, str):
        return make_simple_templating_function(value)
    raise TypeError(f"expected a template string or a function, not {value!r}")


YES = frozenset({"true", "yes", "y", "done", "ok"})


class Instruction:
    """A manual step: show the operator an instruction and wait until they mark it done.

    ``instruction_function`` is a template string (filled from the context) or a function
    ``(trail_env, context) -> str | None``; None means there is nothing to do. With
    ``reply_needed`` the step waits for a reply: True (or yes/y/done/ok) marks it done;
    anything else fails it with InstructionNotCompletedError. Without, the instruction is
    only shown.
    """

    def __init__(
        self,
        name: str,
        instruction_function: str | Callable[[Any, Any], str | None],
        reply_needed: bool = True,
    ) -> None:
        self.name = self.__name__ = name
        self.instruction_function = as_text_function(instruction_function)
        self.reply_needed = reply_needed

    def __str__(self) -> str:
        return self.name

    def __call__(self, trail_env: Any, context: Any) -> str:
        message = self.instruction_function(trail_env, context)
        if message is None:
            return "No instruction to send."
        if not self.reply_needed:
            trail_env.output(message)
            return "Output sent."
        reply = trail_env.input(message)
        if reply is True or (isinstance(reply, str) and reply.strip().lower() in YES):
            return "Step completed successfully based on response received."
        raise InstructionNotCompletedError(
            f"the operator answered {reply!r}: {self.name!r} was not completed"
        )
