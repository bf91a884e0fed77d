"""Helpers the tests share: waiting with a generous deadline, reading a run's states."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEADLINE = 20.0  # generous: a slow CI machine must not fail a correct run


def wait_until(predicate: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def states(client: Any) -> dict[str, str]:
    return {row["Name"]: row["State"] for row in client.status(fields=["State"])}


def wait_states(client: Any, expected: dict[str, str], timeout: float = DEADLINE) -> None:
    """Wait until every named step is in the given state."""
    last: dict[str, str] = {}

    def reached() -> bool:
        nonlocal last
        last = states(client)
        return all(last.get(name) == state for name, state in expected.items())

    try:
        wait_until(reached, f"states {expected}", timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {last}") from None


def names(steps: list[dict[str, Any]]) -> list[str]:
    return [step["name"] for step in steps]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
