"""What was sent, beside the journal: one row per notice and destination, so that a run
taken up after a crash sends nothing twice, and a failed delivery shows in the history."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    key TEXT NOT NULL,            -- the notice: 'failed:3:1700000000.5', 'finished:...'
    kind TEXT NOT NULL,
    n INTEGER,                    -- the step, NULL for the whole run
    destination TEXT NOT NULL,    -- the URL with its secrets masked (never the URL itself)
    time REAL NOT NULL,
    outcome TEXT NOT NULL,        -- 'sending', 'sent', 'failed', 'rate-limited'
    tries INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    pid INTEGER,
    UNIQUE (run_id, key, destination)
);
"""

SENDING, SENT, FAILED, RATE_LIMITED = "sending", "sent", "failed", "rate-limited"


class Ledger:
    """The ``notifications`` table in the journal file (or in memory for a run without a
    journal). Its own connection: it is written from the delivery threads, apart from
    the manager's transaction."""

    def __init__(self, path: Path | None, run_id: int | None) -> None:
        self.run_id = run_id if run_id is not None else 0
        self.in_memory = path is None
        self.db = sqlite3.connect(str(path) if path is not None else ":memory:",
                                  isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._closed = False

    def claim(self, key: str, kind: str, n: int | None, destination: str,
              outcome: str = SENDING) -> bool:
        """Mark the notice as being sent to ``destination``; False if it was sent (or is
        being sent) already. A row left 'sending' by a server that died is taken over: it
        is sent again rather than lost."""
        with self._lock:
            if self._closed:
                return False
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO notifications (run_id, key, kind, n, destination, time,"
                " outcome, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, key, kind, n, destination, time.time(), outcome, os.getpid()))
            if cursor.rowcount == 1:
                return True
            cursor = self.db.execute(
                "UPDATE notifications SET pid = ?, time = ?, outcome = ? WHERE run_id = ? "
                "AND key = ? AND destination = ? AND outcome = ? AND pid != ?",
                (os.getpid(), time.time(), outcome, self.run_id, key, destination, SENDING,
                 os.getpid()))
            return cursor.rowcount == 1

    def last_change(self) -> int | None:
        """The journal's id of the run's latest state change (names a finish)."""
        return self.step_run(None)

    def step_run(self, n: int | None) -> int | None:
        """Which run of step ``n`` this is: the journal's id of its latest start (the same
        in every server that serves the run, unlike times), or None without a journal."""
        if self.in_memory:
            return None
        with self._lock:
            if self._closed:
                return None
            try:
                row = self.db.execute(
                    "SELECT MAX(id) FROM transitions WHERE run_id = ? AND n = ? AND new = ?",
                    (self.run_id, n, "Running")).fetchone() if n is not None else \
                    self.db.execute("SELECT MAX(id) FROM transitions WHERE run_id = ?",
                                    (self.run_id,)).fetchone()
            except sqlite3.OperationalError:
                return None
        return None if row is None or row[0] is None else int(row[0])

    def settle(self, key: str, destination: str, outcome: str, tries: int,
               detail: str | None = None) -> None:
        with self._lock:
            if self._closed:  # the server is gone; the row stays 'sending', for a take-up
                return
            self.db.execute(
                "UPDATE notifications SET outcome = ?, tries = ?, detail = ?, time = ? "
                "WHERE run_id = ? AND key = ? AND destination = ?",
                (outcome, tries, detail, time.time(), self.run_id, key, destination))

    def entries(self) -> list[dict[str, Any]]:
        return notifications(self.db, self.run_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.db.close()


def notifications(db: sqlite3.Connection, run_id: int) -> list[dict[str, Any]]:
    """A run's notices in the order they were first claimed (none in an older journal)."""
    try:
        rows = db.execute(
            "SELECT time, kind, n, destination, outcome, tries, detail, key FROM notifications "
            "WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
    except sqlite3.OperationalError:  # a journal no server with notifications has opened
        return []
    return [{"time": t, "kind": kind, "n": n, "destination": where, "outcome": outcome,
             "tries": tries, "detail": detail, "key": key}
            for t, kind, n, where, outcome, tries, detail, key in rows]


def timeline_entries(db: sqlite3.Connection, run_id: int,
                     names: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """A run's notices as ``trail history`` timeline entries (kind "notice")."""
    found = []
    for entry in notifications(db, run_id):
        outcome = entry["outcome"]
        if entry["tries"] and entry["tries"] > 1:
            outcome += f" after {entry['tries']} tries"
        if entry["detail"]:
            outcome += f": {entry['detail']}"
        found.append({"time": entry["time"], "n": entry["n"],
                      "name": (names or {}).get(entry["n"]) if entry["n"] is not None else None,
                      "kind": "notice",
                      "message": f"{entry['kind']} to {entry['destination']}: {outcome}"})
    return found
