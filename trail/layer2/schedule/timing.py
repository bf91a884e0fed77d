"""When a schedule fires: a cron expression in a zone, or a fixed interval.

Cron follows Debian cron through cronsim: a job at a fixed hour and minute fires once on
the night the clocks go back (the first of the two wall times) and, on the night they go
forward, once at the first valid minute after the skipped one. Expressions with a wildcard
hour or minute run on the wall clock as it is: times that do not exist are left out, and
both passes of a repeated hour fire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from trail.errors import TrailError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class ScheduleError(TrailError, ValueError):
    """A schedule that cannot be made or used: bad cron, unknown zone, missing runbook."""


def parse_every(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``2d`` as seconds."""
    found = EVERY.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ScheduleError(f"--every {text!r} is not a duration like 30s, 5m, 1h or 1d")
    return float(found.group(1)) * UNITS[found.group(2)]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r} (use a name like Europe/Berlin "
                            f"or UTC)") from exc


def _imaginary(moment: datetime) -> bool:
    """A wall time the clocks skipped (it does not survive a round trip through UTC)."""
    back = datetime.fromtimestamp(moment.timestamp(), moment.tzinfo)
    return back.replace(tzinfo=None) != moment.replace(tzinfo=None)


@dataclass(frozen=True)
class Timing:
    """A cron expression in a zone, or an interval in seconds; exactly one of the two."""

    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ScheduleError("give either --cron EXPR or --every DURATION")
        zone(self.tz)
        if self.cron is not None:
            fields = self.cron.split()
            if len(fields) not in (5, 6):
                raise ScheduleError(f"cron expression {self.cron!r} needs 5 fields (minute "
                                    f"hour day month weekday), it has {len(fields)}")
            try:
                CronSim(self.cron, datetime(2000, 1, 1, tzinfo=zone(self.tz)))
            except CronSimError as exc:
                raise ScheduleError(f"bad cron expression {self.cron!r}: {exc}") from exc

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron} ({self.tz})"
        assert self.every is not None
        return f"every {_duration(self.every)}"

    def next_after(self, after: float) -> float:
        """The first firing strictly after ``after`` (epoch seconds)."""
        if self.every is not None:
            return after + self.every
        assert self.cron is not None
        return next_cron(self.cron, zone(self.tz), after)


def next_cron(expr: str, tz: ZoneInfo, after: float) -> float:
    """The first instant strictly after ``after`` at which ``expr`` fires in ``tz``.

    cronsim walks wall times; around a DST change wall order and instant order differ by up
    to the shift, so the walk starts two hours early and keeps the earliest instant found
    until the wall times are two hours past it. Away from a change (the usual case) the
    first time cronsim gives is the answer.
    """
    if _steady(tz, after):
        for wall in CronSim(expr, datetime.fromtimestamp(after, tz)):
            if not _steady(tz, wall.timestamp()):
                break  # lands near a change: walk it the careful way below
            if wall.timestamp() > after:
                return wall.timestamp()
    return careful_next_cron(expr, tz, after)


def careful_next_cron(expr: str, tz: ZoneInfo, after: float) -> float:
    """``next_cron`` by the two-hour walk, right near a DST change too."""
    start = datetime.fromtimestamp(after, tz).replace(tzinfo=None) - timedelta(hours=2)
    walk = CronSim(expr, start.replace(tzinfo=tz))
    fixed_time = walk.fixup_tz is not None  # cronsim applies Debian's DST rules itself
    best: float | None = None
    best_wall: datetime | None = None
    for wall in walk:
        plain = wall.replace(tzinfo=None)
        if best_wall is not None and plain > best_wall + timedelta(hours=2):
            break
        if fixed_time:
            candidates = [wall]
        else:
            candidates = [wall.replace(fold=fold) for fold in (0, 1)]
            candidates = [c for c in candidates if not _imaginary(c)]
        for candidate in candidates:
            moment = candidate.timestamp()
            if moment > after and (best is None or moment < best):
                best, best_wall = moment, plain
    if best is None:
        raise ScheduleError(f"cron expression {expr!r} never fires after "
                            f"{datetime.fromtimestamp(after, tz).isoformat()}")
    return best


def _steady(tz: ZoneInfo, moment: float) -> bool:
    """No change of UTC offset within three hours either side of ``moment``."""
    before = datetime.fromtimestamp(moment - 3 * 3600, tz).utcoffset()
    return before == datetime.fromtimestamp(moment + 3 * 3600, tz).utcoffset()


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
