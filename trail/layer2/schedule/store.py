"""Schedules and their firings in SQLite, in a file beside the journal.

The journal ``journal.sqlite3`` gets ``journal.schedules.sqlite3`` in the same directory:
the CLI writes schedules (and requests to fire now), the scheduler process reads them and
writes firings. A firing is written, with the schedule's next time, in one transaction
before its run is started, so a scheduler killed at any moment never fires it twice.

Tables:
    schedules  one row per schedule: runbook, timing, policies, answers, notify URLs,
               paused, next_at (epoch seconds of its next firing)
    firings    every firing: when it was due, how it ended or why it was skipped; state
               is requested, queued, running, done, skipped or lost
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trail.layer2.schedule.timing import ScheduleError, Timing

OVERLAP = ("skip", "queue", "allow")
CATCH_UP = ("none", "latest", "all")

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    runbook TEXT NOT NULL,        -- absolute path
    cron TEXT,
    every REAL,
    tz TEXT NOT NULL,
    overlap TEXT NOT NULL,
    catch_up TEXT NOT NULL,
    answers TEXT NOT NULL,        -- JSON list of STEP=REPLY words, as given
    notify TEXT NOT NULL,         -- JSON list of URLs
    paused INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    next_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS firings (
    id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    due REAL NOT NULL,            -- when it was due (or asked for, for `schedule run`)
    trigger TEXT NOT NULL,        -- 'time', 'catch-up', 'manual'
    state TEXT NOT NULL,          -- requested, queued, running, done, skipped, lost
    reason TEXT,                  -- why skipped, lost, or caught up
    started REAL,
    ended REAL,
    pid INTEGER,
    run_id INTEGER,               -- the journal's run of this firing
    exit_code INTEGER,
    outcome TEXT,
    log TEXT                      -- where the run's output went
);
CREATE INDEX IF NOT EXISTS firings_by_schedule ON firings (schedule, id);
"""


def store_path(journal: Path) -> Path:
    """The schedule file of a journal: ``journal.sqlite3`` -> ``journal.schedules.sqlite3``."""
    return journal.with_name(journal.name.split(".")[0] + ".schedules.sqlite3")


@dataclass
class Schedule:
    """A runbook and when to fire it."""

    name: str
    runbook: str
    timing: Timing
    overlap: str = "skip"
    catch_up: str = "latest"
    answers: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)
    paused: bool = False
    next_at: float = 0.0
    created: float = 0.0


@dataclass
class Firing:
    """One firing of a schedule, whatever became of it."""

    id: int
    schedule: str
    due: float
    trigger: str
    state: str
    reason: str | None = None
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    run_id: int | None = None
    exit_code: int | None = None
    outcome: str | None = None
    log: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FIRING_COLUMNS = ("id, schedule, due, trigger, state, reason, started, ended, pid, run_id, "
                  "exit_code, outcome, log")


class ScheduleStore:
    """The schedules file; safe to open from the CLI while the scheduler runs (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.db = sqlite3.connect(str(self.path), isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout = 10000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ScheduleError(f"the schedules file {self.path} cannot be read ({exc})") from exc
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so two writers queue rather than fail)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- schedules --------------------------------------------------------------------

    def add(self, schedule: Schedule, now: float | None = None) -> Schedule:
        if schedule.overlap not in OVERLAP:
            raise ScheduleError(f"--overlap {schedule.overlap!r}: use one of {', '.join(OVERLAP)}")
        if schedule.catch_up not in CATCH_UP:
            raise ScheduleError(f"--catch-up {schedule.catch_up!r}: use one of "
                                f"{', '.join(CATCH_UP)}")
        now = time.time() if now is None else now
        schedule.created = now
        # An interval counts from a whole second: firings at :00, not at :00.0762.
        start = float(int(now)) if schedule.timing.every is not None else now
        schedule.next_at = schedule.timing.next_after(start)
        t = schedule.timing
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM schedules WHERE name = ?", (schedule.name,)).fetchone():
                raise ScheduleError(f"a schedule named {schedule.name!r} exists already "
                                    f"(trail schedule rm {schedule.name} first)")
            db.execute(
                "INSERT INTO schedules (name, runbook, cron, every, tz, overlap, catch_up, "
                "answers, notify, paused, created, next_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (schedule.name, schedule.runbook, t.cron, t.every, t.tz, schedule.overlap,
                 schedule.catch_up, json.dumps(schedule.answers), json.dumps(schedule.notify),
                 int(schedule.paused), schedule.created, schedule.next_at))
        return schedule

    def get(self, name: str) -> Schedule:
        row = self.db.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?",
                              (name,)).fetchone()
        if row is None:
            known = [s.name for s in self.schedules()]
            raise ScheduleError(f"no schedule named {name!r}"
                                + (f" (schedules: {', '.join(known)})" if known else ""))
        return _schedule(row)

    def schedules(self) -> list[Schedule]:
        return [_schedule(row) for row in self.db.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name")]

    def remove(self, name: str) -> None:
        self.get(name)
        with self.transaction() as db:
            db.execute("DELETE FROM schedules WHERE name = ?", (name,))
            # Requests and queued firings die with the schedule; the record of the rest stays.
            db.execute("UPDATE firings SET state = 'skipped', reason = 'the schedule was "
                       "removed' WHERE schedule = ? AND state IN ('requested', 'queued')",
                       (name,))

    def set_paused(self, name: str, paused: bool, now: float | None = None) -> Schedule:
        schedule = self.get(name)
        now = time.time() if now is None else now
        with self.transaction() as db:
            if paused:
                db.execute("UPDATE schedules SET paused = 1 WHERE name = ?", (name,))
            elif schedule.paused:
                # What fell due while paused is not caught up: the next firing is from now.
                db.execute("UPDATE schedules SET paused = 0, next_at = ? WHERE name = ?",
                           (schedule.timing.next_after(now), name))
        return self.get(name)

    def set_next(self, db: sqlite3.Connection, name: str, next_at: float) -> None:
        db.execute("UPDATE schedules SET next_at = ? WHERE name = ?", (next_at, name))

    # --- firings -----------------------------------------------------------------------

    def add_firing(self, db: sqlite3.Connection, schedule: str, due: float, trigger: str,
                   state: str, reason: str | None = None) -> int:
        cursor = db.execute("INSERT INTO firings (schedule, due, trigger, state, reason) "
                            "VALUES (?, ?, ?, ?, ?)", (schedule, due, trigger, state, reason))
        return int(cursor.lastrowid or 0)

    def update_firing(self, firing_id: int, **fields: Any) -> None:
        names = ", ".join(f"{key} = ?" for key in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE firings SET {names} WHERE id = ?", (*fields.values(), firing_id))

    def request(self, name: str, now: float | None = None) -> int:
        """Ask the scheduler to fire ``name`` now (``trail schedule run``)."""
        self.get(name)
        with self.transaction() as db:
            return self.add_firing(db, name, time.time() if now is None else now, "manual",
                                   "requested")

    def firings(self, name: str | None = None, states: tuple[str, ...] = (),
                limit: int = 1000) -> list[Firing]:
        where, args = [], []
        if name is not None:
            where.append("schedule = ?")
            args.append(name)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args += list(states)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.execute(f"SELECT {FIRING_COLUMNS} FROM firings {clause} "
                               f"ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Firing(*row) for row in reversed(rows)]

    def last_run(self, name: str) -> Firing | None:
        """The latest firing that started a run."""
        row = self.db.execute(f"SELECT {FIRING_COLUMNS} FROM firings WHERE schedule = ? AND "
                              f"state IN ('running', 'done', 'lost') ORDER BY id DESC LIMIT 1",
                              (name,)).fetchone()
        return None if row is None else Firing(*row)

    def skipped(self, name: str, limit: int = 20) -> tuple[int, list[Firing]]:
        """How many firings of ``name`` were skipped, and the latest ``limit`` of them."""
        count = self.db.execute("SELECT COUNT(*) FROM firings WHERE schedule = ? AND "
                                "state = 'skipped'", (name,)).fetchone()[0]
        return count, self.firings(name, ("skipped",), limit)


SCHEDULE_COLUMNS = ("name, runbook, cron, every, tz, overlap, catch_up, answers, notify, "
                    "paused, next_at, created")


def _schedule(row: tuple) -> Schedule:
    (name, runbook, cron, every, tz, overlap, catch_up, answers, notify, paused, next_at,
     created) = row
    return Schedule(name, runbook, Timing(cron=cron, every=every, tz=tz), overlap, catch_up,
                    json.loads(answers), json.loads(notify), bool(paused), next_at, created)
