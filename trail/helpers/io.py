"""AutoTrail's ``autotrail.helpers.io`` names: the REPL wrapper, the diagram, and printers
of API results in AutoTrail's plain-text layout, to hand to ``InteractiveTrail``
(``InteractiveTrail(client, status_printer=print_step_statuses)``) where plain text suits
better than trail's tables (a log file, a pipe)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

from trail.layer1.calls import StatusField
from trail.layer2.cli.repl import InteractiveTrail, Names
from trail.layer2.diagram import write_trail_definition_as_dot

_LISTED = (StatusField.OUTPUT_MESSAGES, StatusField.PROMPT_MESSAGES,
           StatusField.INPUT_MESSAGES)
_WIDTH = max(len(field) for field in (StatusField.N, StatusField.NAME, StatusField.STATE,
                                      StatusField.RETURN_VALUE, *_LISTED,
                                      StatusField.UNREPLIED_PROMPT_MESSAGE))


def _line(to: IO[str], first: bool, field: str, value: Any) -> None:
    print(f"{'-' if first else ' '} {field:<{_WIDTH}}: {value}", file=to)


def print_step_statuses(step_statuses: Iterable[dict[str, Any]], to: IO[str]) -> None:
    """Each step's status as ``- Name : ...`` then one ``field : value`` line per value."""
    print("Status of steps:", file=to)
    for row in step_statuses:
        _line(to, True, StatusField.NAME, row.get(StatusField.NAME))
        _line(to, False, StatusField.N, row.get(StatusField.N))
        for field, value in row.items():
            if field in (StatusField.N, StatusField.NAME):
                continue
            if field in _LISTED and isinstance(value, list):
                for index, message in enumerate(value):
                    _line(to, False, field if index == 0 else "", message)
            else:
                _line(to, False, field, value)
        print("", file=to)


def print_error(method_name: str, error_message: str, to: IO[str]) -> None:
    print(f"- API Call: {method_name}\n  Error: {error_message}", file=to)


def print_api_result(method_name: str, api_result: Any, to: IO[str]) -> None:
    print(f"- API Call: {method_name}\n  Result: {api_result}", file=to)


def print_no_result(method_name: str, to: IO[str]) -> None:
    print(f"- API Call: {method_name}\n  No result received for the API call.", file=to)


def print_affected_steps(method_name: str, affected_steps: Iterable[dict[str, Any]],
                         dry_run: bool, to: IO[str]) -> None:
    print(f"- API Call: {method_name}\n  Mode: {'Dry Run' if dry_run else 'Actual Run'}\n"
          f"  List of step names that are affected:", file=to)
    for step in affected_steps:
        print(f"    # {step['n']} - {step['name']}", file=to)


def print_step_list(steps_tags: Iterable[dict[str, Any]], to: IO[str]) -> None:
    print("List of steps and their tags:", file=to)
    for tags in steps_tags:
        print(f"- Name: {tags['name']}\n  n: {tags['n']}", file=to)
        for key, value in tags.items():
            if key not in ("name", "n"):
                print(f"  {key}: {value}", file=to)


__all__ = [
    "InteractiveTrail",
    "Names",
    "print_affected_steps",
    "print_api_result",
    "print_error",
    "print_no_result",
    "print_step_list",
    "print_step_statuses",
    "write_trail_definition_as_dot",
]
