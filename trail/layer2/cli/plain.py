"""Text for a person, without rich: what ``trail run --plain`` prints (for CI, cron and
logs), which must start and print fast, and what the rich views share with it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO


class PlainConsole:
    """Where ``trail run --plain`` prints: one line per call, written and flushed at once.
    It takes the calls the rich Console takes for plain text (``markup``, ``highlight``,
    ``soft_wrap`` ask for what it does anyway)."""

    is_terminal = False

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file or sys.stdout

    def print(self, text: object = "", **_plain_text: Any) -> None:
        self.file.write(f"{text}\n")
        self.file.flush()


# Control characters but newline and tab: C0, DEL, C1 (a lone 0x9b is a CSI on some
# terminals). A step's output with them could clear the screen, move the cursor or set the
# window's title in the operator's terminal.
_CONTROLS = {code: (f"^{chr(code + 64)}" if code < 32 else "^?" if code == 127
                    else f"\\x{code:02x}")
             for code in [*range(32), 127, *range(0x80, 0xA0)] if chr(code) not in "\n\t"}


def visible(text: str) -> str:
    """``text`` with its control characters shown (ESC as ``^[``, CR as ``^M``, 0x9b as
    ``\\x9b``) rather than obeyed by the terminal; everything else is kept."""
    return text.translate(_CONTROLS)


def elapsed(started: float | None, finished: float | None, now: float | None = None) -> str:
    """How long a step ran (or has been running): '1.2 s', '3 min 04 s'."""
    if started is None:
        return ""
    seconds = max(0.0, (finished or now or time.time()) - started)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def clock(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else ""


def stop_summary(stopped: Iterable[Any], shown: int = 10) -> list[str]:
    """Lines that say how a stop went, from the runs' ``stopped`` events: how many hosts
    confirmed their command ended (and which did not, and why), and the steps whose run
    did not end in its grace period. Nothing when no stopped run had a word to say."""
    confirmed: list[str] = []
    unconfirmed: list[str] = []
    given_up: list[str] = []
    for event in stopped:
        for report in event["reports"]:
            if report.get("where") is None:
                continue
            if report.get("confirmed"):
                confirmed.append(report["where"])
            else:
                unconfirmed.append(f"{report['where']} ({report.get('detail', '')})")
        if not event["ended"] and not event["reports"]:
            given_up.append(f"{event['n']} {event['name']}")
    lines = []
    hosts = len(confirmed) + len(unconfirmed)
    if hosts:
        lines.append(f"{len(confirmed)} of {hosts} host(s) confirmed the stop"
                     + ("" if unconfirmed else " (each said its command ended)"))
    if unconfirmed:
        more = f"; and {len(unconfirmed) - shown} more" if len(unconfirmed) > shown else ""
        lines.append("not confirmed: " + "; ".join(unconfirmed[:shown]) + more)
    if given_up:
        more = f" and {len(given_up) - shown} more" if len(given_up) > shown else ""
        lines.append(f"{len(given_up)} stopped step(s) did not end within their grace "
                     f"period: " + ", ".join(given_up[:shown]) + more)
    return lines
