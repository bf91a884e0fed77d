"""The Python function examples/rolling.yaml calls (``call: rolling_hooks:announce``)."""

from __future__ import annotations

from typing import Any


def announce(trail_env: Any, context: Any) -> str:
    """Tell the operator how the rolling restart went; the text is the step's value."""
    message = f"{context['service']} {context['release']} rolled out, {context['first']} first"
    trail_env.output(message)
    return message
