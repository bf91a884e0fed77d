"""Safe templates: ``{key}`` filled from the context and earlier steps' values.

A value never changes the shape of a command. In an argument list (or a string command,
which is split into words when the file is loaded) each value lands inside one argument.
In a shell command (``shell: true``) each value is shell-quoted, unless the author lists
its key under ``raw``; a placeholder inside quotes is refused, because quoting a value
there would break out of the author's quotes. There ``${VAR}`` is the shell's.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

_FORMATTER = string.Formatter()
_SHELL_VARIABLE = re.compile(r"\$\{([^{}]*)\}")


def shell_template(command: str) -> str:
    """A shell command's template with its ``${VAR}`` left to the shell (braces doubled),
    so only a bare ``{key}`` is trail's."""
    return _SHELL_VARIABLE.sub(lambda match: "${{" + match.group(1) + "}}", command)


def fields(template: str) -> list[str]:
    """The placeholders' field names (``service``, ``check[stdout]``); ValueError for a
    template that does not parse (a lone brace)."""
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]


def root(field: str) -> str:
    """The key a field looks up: ``check`` of ``check[stdout]`` or ``check.x``."""
    return field.split(".")[0].split("[")[0]


def render(template: str, values: Mapping[str, Any],
           quote: Callable[[str, str], str] | None = None) -> str:
    """Fill the template; ``quote(key, text)`` wraps each value's text when given."""
    parts = []
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        parts.append(literal)
        if name is None:
            continue
        key = root(name)
        if key not in values:
            raise KeyError(f"the template {template!r} needs {key!r}, which has no value "
                           f"(the context's keys and earlier steps: {sorted(values)})")
        value, _ = _FORMATTER.get_field(name, (), values)
        value = _FORMATTER.convert_field(value, conversion)
        text = _FORMATTER.format_field(value, spec or "")
        parts.append(quote(key, text) if quote else text)
    return "".join(parts)


def shell_quoter(raw: frozenset[str]) -> Callable[[str, str], str]:
    """Quote each value for sh, except those whose key the author marked raw."""
    return lambda key, text: text if key in raw else shlex.quote(text)


def quoted_placeholders(template: str) -> Iterator[str]:
    """Placeholders of a shell command that stand inside quotes (where quoting a value
    would close the author's quote instead of protecting the value)."""
    state = ""  # "", "'" or '"': the quote we are in
    for literal, name, _, _ in _FORMATTER.parse(template):
        escaped = False
        for char in literal:
            if escaped:
                escaped = False
            elif char == "\\" and state != "'":
                escaped = True
            elif state == "" and char in "'\"":
                state = char
            elif char == state:
                state = ""
        if name is not None and state:
            yield name
