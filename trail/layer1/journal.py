"""The journal: every run, step state change, message and return value, in SQLite.

The manager writes into one open transaction during a wake-up and commits it before any
reply or event of that wake-up leaves (WAL mode, ``synchronous=NORMAL``: a killed server
loses nothing it acknowledged; a power cut may lose the last wake-ups, never corrupts).
One file holds every trail's runs (default ``$XDG_STATE_HOME/trail/journal.sqlite3``).

Tables:
    runs         one row per run: the trail's name, its shape, when, how it ended
    steps        the latest state of each step of a run (what recovery restores)
    transitions  every state change: when, from, to, and the cause (``api:pause`` ...)
    messages     output, prompts and replies, per step and attempt
    context      what the steps put in the run's context, attribute by attribute

Few indexes on purpose: a commit writes every page it touches, and the hot path (a
transition, a step row) then touches about two; history reads scan, which is fine for a
command a person runs now and then.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trail.errors import JournalError, JournalMismatchError
from trail.layer1 import forks, values
from trail.layer1.sockets import check_owner

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    shape TEXT NOT NULL,          -- JSON: {"steps": [[n, name], ...], "edges": [[p, c], ...]}
    started REAL NOT NULL,
    ended REAL,                   -- NULL while the run is open (or its server died)
    outcome TEXT,                 -- how it ended: 'shut down', 'abandoned'
    pid INTEGER,
    socket TEXT,
    origin TEXT                   -- where the trail comes from: a runbook's or script's path
);
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    n INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    pause_on_fail INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    return_value TEXT,            -- JSON text of the value as shown (values.encode)
    return_kind TEXT,             -- 'shown'; older trails wrote 'json' or 'repr'
    started_at REAL,
    finished_at REAL,
    tries INTEGER NOT NULL DEFAULT 0,  -- runs since the operator last let it run (retries)
    retry_at REAL,                -- wall clock: a Waiting step's retry must not start before
    PRIMARY KEY (run_id, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    time REAL NOT NULL,
    old TEXT NOT NULL,
    new TEXT NOT NULL,
    cause TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,           -- 'output', 'prompt', 'input'
    message TEXT NOT NULL,        -- JSON
    cause TEXT                    -- an input's: the call and who made it ('api:... by ...')
);
CREATE TABLE IF NOT EXISTS context (
    run_id INTEGER NOT NULL,
    name TEXT NOT NULL,           -- an attribute of the run's context
    value BLOB NOT NULL,          -- its value, pickled (layer1/context.py)
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, id);
"""


def default_journal_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "trail" / "journal.sqlite3"


def shape_of(steps: Iterable[tuple[int, str]], edges: Iterable[tuple[int, int]]) -> dict:
    return {"steps": sorted([n, name] for n, name in steps),
            "edges": sorted([p, c] for p, c in edges)}


def differences(old: dict, new: dict) -> list[str]:
    """How a trail's shape changed, step by step (matched by n and name)."""
    found = []
    old_steps = {n: name for n, name in old["steps"]}
    new_steps = {n: name for n, name in new["steps"]}
    for n in sorted(set(old_steps) | set(new_steps)):
        if n not in new_steps:
            found.append(f"step {n} {old_steps[n]!r} is gone")
        elif n not in old_steps:
            found.append(f"step {n} {new_steps[n]!r} is new")
        elif old_steps[n] != new_steps[n]:
            found.append(f"step {n} was {old_steps[n]!r}, is {new_steps[n]!r}")
    old_edges = {tuple(e) for e in old["edges"]}
    new_edges = {tuple(e) for e in new["edges"]}
    for p, c in sorted(old_edges - new_edges):
        found.append(f"link {p} -> {c} is gone")
    for p, c in sorted(new_edges - old_edges):
        found.append(f"link {p} -> {c} is new")
    return found


@dataclass
class SavedStep:
    """A step as the journal last saw it."""

    n: int
    name: str
    state: str
    pause_on_fail: bool
    attempt: int
    return_value: Any
    started_at: float | None
    finished_at: float | None
    output: list[Any] = field(default_factory=list)
    output_ids: list[int] = field(default_factory=list)  # their rows in the journal
    prompts: list[Any] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    tries: int = 0
    retry_at: float | None = None  # wall clock


def _stamp(path: Path) -> str | None:
    """The journal file as ``stat`` sees it, when all of it is in that file (no write-ahead
    log with frames in it); None otherwise."""
    try:
        wal = os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        wal = 0
    if wal:
        return None
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{found.st_dev} {found.st_ino} {found.st_size} {found.st_mtime_ns}"


def _mark(path: Path) -> Path:
    return path.with_name(path.name + "-closed")


def unchanged_since_close(path: Path) -> bool:
    """The file is byte for byte what a checked journal was when trail last closed it (its
    size, time and inode as that close recorded them, no write-ahead log): nothing wrote to
    it since, so the whole-file check would say what it said then. Damage by the disk
    itself, which changes none of these, goes unseen until SQLite reads that page."""
    try:
        recorded = _mark(path).read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    return recorded == _stamp(path)


def mark_closed(path: Path, trusted: bool) -> None:
    """Record how a checked journal was left (``unchanged_since_close``), or, when another
    connection's log still holds some of it, that nothing is known. A reader's close (not
    ``trusted``) records nothing: anything it changed, the stamp no longer matches."""
    if not trusted:
        return
    stamp = _stamp(path)
    mark = _mark(path)
    if stamp is None:
        mark.unlink(missing_ok=True)
        return
    descriptor = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(stamp)


def _connect(path: Path, verify: bool) -> sqlite3.Connection:
    """The journal's connection, its schema made; the whole-file check first if asked."""
    # The journal, its -wal and its -shm are made 0600 from the start (SQLite makes them
    # as it goes): operators' answers and steps' output are in them.
    old_umask = os.umask(0o177)
    try:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 10000")
        check = db.execute("PRAGMA quick_check" if verify else
                           "PRAGMA schema_version").fetchone()[0]
        if verify and check != "ok":
            raise JournalError(f"the journal at {path} is damaged ({check}); move it aside "
                               f"to start a new one")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(SCHEMA)
        _add_missing_columns(db)
        return db
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"the journal at {path} cannot be read ({exc}); move it aside to "
                           f"start a new one") from exc
    finally:
        os.umask(old_umask)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A journal written by an older trail lacks the newer columns; add them."""
    have = {row[1] for row in db.execute("PRAGMA table_info(steps)")}
    for column, kind in (("tries", "INTEGER NOT NULL DEFAULT 0"), ("retry_at", "REAL")):
        if column not in have:
            db.execute(f"ALTER TABLE steps ADD COLUMN {column} {kind}")
    if "origin" not in {row[1] for row in db.execute("PRAGMA table_info(runs)")}:
        db.execute("ALTER TABLE runs ADD COLUMN origin TEXT")
    if "cause" not in {row[1] for row in db.execute("PRAGMA table_info(messages)")}:
        db.execute("ALTER TABLE messages ADD COLUMN cause TEXT")


class Journal:
    """One SQLite journal file; the manager's thread is its only user."""

    def __init__(self, path: str | Path, verify: bool = True) -> None:
        """Open (or make) the journal at ``path``. ``verify`` runs SQLite's quick_check
        first, refusing a damaged journal before a run writes to it; it reads the whole
        file (0.1-0.7 s for 50 MB here), so it is skipped when the file is as trail left it
        after a clean close (``unchanged_since_close``), and a reader that only looks
        (history, logs, the web page) passes False."""
        self.path = Path(path)
        check_owner(self.path.parent, "the journal's")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        unchanged = verify and unchanged_since_close(self.path)
        self.db = _connect(self.path, verify and not unchanged)
        # Checked now, or what a checked journal was when trail closed it; its close says so.
        self.trusted = verify
        for name in self._files():  # files an older trail left open to others
            if os.path.exists(name) and os.stat(name).st_uid == os.getuid():
                os.chmod(name, 0o600)
        self._open = False
        # Transitions wait here for the commit, which writes them in one statement.
        self._transitions: list[tuple[int, int, float, str, str, str]] = []
        # Never a forked child's (a step's): see trail.layer1.forks.
        forks.server_files(self._files(), keep=self.db)

    def _files(self) -> list[str]:
        return [str(self.path), f"{self.path}-wal", f"{self.path}-shm"]

    # --- writing (inside the manager's wake-up transaction) -------------------------

    def _begin(self) -> None:
        if not self._open:
            self.db.execute("BEGIN")
            self._open = True

    def commit(self) -> None:
        if self._transitions:
            self._begin()
            self.db.executemany("INSERT INTO transitions (run_id, n, time, old, new, cause) "
                                "VALUES (?, ?, ?, ?, ?, ?)", self._transitions)
            self._transitions = []
        if self._open:
            self.db.execute("COMMIT")
            self._open = False

    def new_run(self, name: str, shape: dict, steps: Iterable[tuple[int, str, str, bool]],
                socket: str | None, origin: str | None = None) -> int:
        self._begin()
        cursor = self.db.execute(
            "INSERT INTO runs (name, shape, started, pid, socket, origin) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, json.dumps(shape), time.time(), os.getpid(), socket, origin))
        run_id = int(cursor.lastrowid or 0)
        self.db.executemany(
            "INSERT INTO steps (run_id, n, name, state, pause_on_fail) VALUES (?, ?, ?, ?, ?)",
            [(run_id, n, name, state, int(pof)) for n, name, state, pof in steps])
        self.commit()
        return run_id

    def adopt_run(self, run_id: int, socket: str | None) -> None:
        """This server now owns a recovered run."""
        self._begin()
        self.db.execute("UPDATE runs SET pid = ?, socket = ?, ended = NULL, outcome = NULL "
                        "WHERE id = ?", (os.getpid(), socket, run_id))
        self.commit()

    def transition(self, run_id: int, n: int, old: str, new: str, cause: str) -> None:
        """A state change, written with the wake-up's commit (in the order they came)."""
        self._transitions.append((run_id, n, time.time(), old, new, cause))

    def step(self, run_id: int, n: int, *, state: str, attempt: int, pause_on_fail: bool,
             return_value: Any, started_at: float | None, finished_at: float | None,
             tries: int = 0, retry_at: float | None = None) -> None:
        """A step's latest state (the manager writes each changed step once per commit)."""
        self.steps(run_id, [(n, state, attempt, pause_on_fail, return_value, started_at,
                             finished_at, tries, retry_at)])

    def steps(self, run_id: int, rows: Iterable[tuple[int, str, int, bool, Any, float | None,
                                                       float | None, int, float | None]]
              ) -> None:
        """The latest state of changed steps, one statement for all: (n, state, attempt,
        pause_on_fail, return_value, started_at, finished_at, tries, retry_at) each."""
        self._begin()
        self.db.executemany(
            "UPDATE steps SET state = ?, attempt = ?, pause_on_fail = ?, return_value = ?, "
            "return_kind = 'shown', started_at = ?, finished_at = ?, tries = ?, retry_at = ? "
            "WHERE run_id = ? AND n = ?",
            [(state, attempt, int(pause_on_fail),
              values.encode(return_value),
              started_at, finished_at, tries, retry_at, run_id, n)
             for n, state, attempt, pause_on_fail, return_value, started_at, finished_at,
             tries, retry_at in rows])

    def message(self, run_id: int, n: int, attempt: int, kind: str, message: Any,
                cause: str | None = None) -> int:
        """Journal a message (an answer with its ``cause``: who gave it); return its row
        (``drop_messages`` takes rows)."""
        self._begin()
        cursor = self.db.execute("INSERT INTO messages (run_id, n, attempt, time, kind, "
                                 "message, cause) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (run_id, n, attempt, time.time(), kind, values.encode(message),
                                  cause))
        return int(cursor.lastrowid or 0)

    def drop_messages(self, rows: list[int]) -> None:
        """Delete messages by row: the oldest output of a step that said too much."""
        self._begin()
        self.db.executemany("DELETE FROM messages WHERE id = ?", [(row,) for row in rows])

    def save_context(self, run_id: int, parts: dict[str, bytes]) -> None:
        """Changed parts of the run's context (in the wake-up's transaction); an empty
        value is a part deleted (layer1/context.py, DELETED)."""
        if parts:
            self._begin()
            self.db.executemany(
                "INSERT OR REPLACE INTO context (run_id, name, value) VALUES (?, ?, ?)",
                [(run_id, name, value) for name, value in parts.items() if value])
            self.db.executemany(
                "DELETE FROM context WHERE run_id = ? AND name = ?",
                [(run_id, name) for name, value in parts.items() if not value])

    def saved_context(self, run_id: int) -> dict[str, bytes]:
        return {name: bytes(value) for name, value in self.db.execute(
            "SELECT name, value FROM context WHERE run_id = ?", (run_id,))}

    def close_run(self, run_id: int, outcome: str) -> None:
        self._begin()
        self.db.execute("UPDATE runs SET ended = ?, outcome = ? WHERE id = ?",
                        (time.time(), outcome, run_id))
        self.commit()

    def close(self) -> None:
        self.commit()
        self.db.close()
        forks.forget(self._files(), keep=self.db)
        mark_closed(self.path, self.trusted)

    # --- reading -------------------------------------------------------------------

    def latest_run(self, name: str, origin: str | None = None) -> dict[str, Any] | None:
        """The latest run of the trail called ``name`` from ``origin`` (a runbook's or
        script's path: two trails of one name from different files are different trails;
        None: from anywhere). A run written without an origin (by an older trail) matches
        any, so a crashed run is still taken up after an upgrade."""
        row = self.db.execute(
            "SELECT id, name, shape, started, ended, outcome, pid, socket FROM runs "
            "WHERE name = ? AND (? IS NULL OR origin IS NULL OR origin = ?) "
            "ORDER BY id DESC LIMIT 1", (name, origin, origin)).fetchone()
        return None if row is None else _run_row(row)

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, name, shape, started, ended, outcome, pid, socket FROM runs "
            "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        found = [_run_row(row) for row in rows]
        for run in found:
            run["counts"] = dict(self.db.execute(
                "SELECT state, COUNT(*) FROM steps WHERE run_id = ? GROUP BY state",
                (run["id"],)).fetchall())
            last = self.db.execute("SELECT MAX(time) FROM transitions WHERE run_id = ?",
                                   (run["id"],)).fetchone()[0]
            run["last_change"] = last
        return found

    def run(self, run_id: int) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, name, shape, started, ended, outcome, pid, socket FROM runs "
            "WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run_row(row)

    def started(self, run_id: int) -> float | None:
        """When a run started (``run`` also reads its shape: slow for a big trail)."""
        row = self.db.execute("SELECT started FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else float(row[0])

    def timeline(self, run_id: int, messages: bool = False) -> list[dict[str, Any]]:
        """One run in order: state changes (``kind`` "state": old, new, cause) and, with
        ``messages``, what steps said and were told ("output", "prompt", "input":
        message, attempt)."""
        names = dict(self.db.execute("SELECT n, name FROM steps WHERE run_id = ?",
                                     (run_id,)).fetchall())
        entries = [
            {"time": t, "n": n, "name": names.get(n), "kind": "state", "old": old, "new": new,
             "cause": cause}
            for t, n, old, new, cause in self.db.execute(
                "SELECT time, n, old, new, cause FROM transitions WHERE run_id = ? ORDER BY id",
                (run_id,))
        ]
        if messages:
            entries += [
                {"time": t, "n": n, "name": names.get(n), "kind": kind, "attempt": attempt,
                 "message": values.decode(message), **({"cause": cause} if cause else {})}
                for t, n, attempt, kind, message, cause in self.db.execute(
                    "SELECT time, n, attempt, kind, message, cause FROM messages "
                    "WHERE run_id = ? ORDER BY id", (run_id,))
            ]
        entries.sort(key=lambda entry: entry["time"])  # stable: each table keeps its order
        return entries

    def saved_steps(self, run_id: int) -> dict[int, SavedStep]:
        steps = {}
        for (n, name, state, pof, attempt, value, started, finished, tries,
             retry_at) in self.db.execute(
                "SELECT n, name, state, pause_on_fail, attempt, return_value, started_at, "
                "finished_at, tries, retry_at FROM steps WHERE run_id = ?", (run_id,)):
            steps[n] = SavedStep(n, name, state, bool(pof), attempt,
                                 None if value is None else values.decode(value), started, finished,
                                 tries=tries, retry_at=retry_at)
        for row, n, attempt, kind, message in self.db.execute(
                "SELECT id, n, attempt, kind, message FROM messages WHERE run_id = ? "
                "ORDER BY id", (run_id,)):
            saved = steps.get(n)
            if saved is None:
                continue
            value = values.decode(message)
            if kind == "output":
                saved.output.append(value)
                saved.output_ids.append(row)
            elif kind in ("prompt", "input") and attempt == saved.attempt:
                # prompts and replies of the latest run only
                (saved.prompts if kind == "prompt" else saved.inputs).append(value)
        return steps


def prune(book: Journal, before: float | None = None, keep: int | None = None,
          dry_run: bool = True) -> list[dict[str, Any]]:
    """Forget closed runs that started before ``before`` (epoch seconds) and are not
    among the newest ``keep``, with every row of theirs in every table (steps,
    transitions, messages, context, notifications, ...); return them (id, name,
    started, ended, outcome). Never a run still open (its server may be alive, or it
    waits to be taken up) nor the latest run of a trail (``--resume`` takes it up).
    With ``dry_run`` nothing is deleted."""
    if before is None and keep is None:
        raise ValueError("say which runs to forget: those older than a time, or all "
                         "but the newest so many")
    query = ("SELECT id, name, started, ended, outcome FROM runs WHERE ended IS NOT NULL"
             " AND id NOT IN (SELECT MAX(id) FROM runs GROUP BY name)")
    args: list[Any] = []
    if before is not None:
        query += " AND started < ?"
        args.append(before)
    if keep is not None:
        query += " AND id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?)"
        args.append(keep)
    found = [dict(zip(("id", "name", "started", "ended", "outcome"), row, strict=True))
             for row in book.db.execute(query + " ORDER BY id", args)]
    if dry_run or not found:
        return found
    ids = [(run["id"],) for run in found]
    tables = [name for (name,) in book.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'runs'")]
    book._begin()
    for table in tables:
        columns = {row[1] for row in book.db.execute(f'PRAGMA table_info("{table}")')}
        if "run_id" in columns:
            book.db.executemany(f'DELETE FROM "{table}" WHERE run_id = ?', ids)
    book.db.executemany("DELETE FROM runs WHERE id = ?", ids)
    book.commit()
    return found


def _run_row(row: tuple) -> dict[str, Any]:
    run_id, name, shape, started, ended, outcome, pid, socket = row
    return {"id": run_id, "name": name, "shape": json.loads(shape), "started": started,
            "ended": ended, "outcome": outcome, "pid": pid, "socket": socket}


def open_run(journal: Journal, name: str, shape: dict,
             steps: list[tuple[int, str, str, bool]], socket: str | None,
             resume: bool | None,
             origin: str | None = None) -> tuple[int, dict[int, SavedStep] | None]:
    """The run this server serves: a new one, or the journal's latest run of this trail.

    ``resume=None`` takes up the latest run only if its server died (the run was never
    closed and nobody serves its socket); ``True`` also takes up one that was shut down;
    ``False`` always starts anew. A run to take up whose trail has changed is refused
    (JournalMismatchError lists the differences), never guessed at.
    """
    latest = journal.latest_run(name, origin) if resume is not False else None
    if latest is not None:
        # Its socket path is ours now (we bound it, so its server is gone), or dead.
        died = latest["ended"] is None and (latest["socket"] == socket
                                            or not _served(latest["socket"], latest["pid"]))
        if resume or died:
            found = differences(latest["shape"], shape)
            if found:
                raise JournalMismatchError(latest["id"], found)
            journal.adopt_run(latest["id"], socket)
            if died and latest["socket"] and latest["socket"] != socket:
                _remove_dead_socket(latest["socket"])
            return latest["id"], journal.saved_steps(latest["id"])
    if resume is False:
        previous = journal.latest_run(name, origin)
        if previous is not None and previous["ended"] is None and \
                (previous["socket"] == socket
                 or not _served(previous["socket"], previous["pid"])):
            journal.close_run(previous["id"], "abandoned")
    return journal.new_run(name, shape, steps, socket, origin), None


def _remove_dead_socket(socket: str) -> None:
    """The socket files of a crashed server whose run this server took up (its log stays,
    for a post-mortem)."""
    import stat

    from trail.layer1.sockets import events_file, is_live

    for path in (socket, events_file(socket)):
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode) and not is_live(path):
                os.unlink(path)
        except OSError:
            continue


def _served(socket: str | None, pid: int | None = None) -> bool:
    """The run's server still serves this socket (so its run is not a crashed one).

    Someone accepting on the socket is not enough: an orphan of a crashed server may hold
    it. When the socket's holders can be read, the run's server (``pid``) must be one.
    """
    if not socket:
        return False
    from trail.layer1.sockets import is_live

    try:
        if not is_live(socket):
            return False
    except OSError:
        return False
    held_by = forks.holders(socket)
    return not held_by or pid is None or pid in held_by


class JournalRun:
    """One run's side of the journal: what the run writes, without repeating its id."""

    def __init__(self, journal: Journal, run_id: int) -> None:
        self.journal = journal
        self.run_id = run_id

    def transition(self, n: int, old: str, new: str, cause: str) -> None:
        self.journal.transition(self.run_id, n, old, new, cause)

    def message(self, n: int, attempt: int, kind: str, message: Any,
                cause: str | None = None) -> int:
        return self.journal.message(self.run_id, n, attempt, kind, message, cause)

    def drop_messages(self, rows: list[int]) -> None:
        self.journal.drop_messages(rows)

    def step(self, n: int, **fields: Any) -> None:
        self.journal.step(self.run_id, n, **fields)

    def steps(self, rows: Iterable[tuple[int, str, int, bool, Any, float | None,
                                         float | None, int, float | None]]) -> None:
        self.journal.steps(self.run_id, rows)

    def save_context(self, parts: dict[str, bytes]) -> None:
        self.journal.save_context(self.run_id, parts)

    def saved_context(self) -> dict[str, bytes]:
        return self.journal.saved_context(self.run_id)

    def commit(self) -> None:
        self.journal.commit()

    def close(self, outcome: str) -> None:
        self.journal.close_run(self.run_id, outcome)
