"""The scheduler: one long-running process per journal that fires schedules as runs.

Each pass (``tick``) reaps finished runs, turns what fell due into firings (applying the
catch-up and overlap policies, recording every skip with its reason) and starts queued
firings as ``python -m trail run RUNBOOK --plain --journal J``: an ordinary run that shows
in ``trail ls`` and ``trail history`` and can be steered. Runs are their own sessions: a
scheduler that stops or is killed leaves them running, and the next one adopts them by pid.
Time comes from an injectable clock so tests step through DST nights without waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from trail.layer2.schedule.store import Firing, Schedule, ScheduleStore
from trail.layer2.schedule.timing import ScheduleError

log = logging.getLogger(__name__)

GRACE = 60.0  # a firing found due within this many seconds is on time, not missed
POLL = 1.0  # longest sleep: new schedules, requests and ended runs are seen this soon
MAX_MISSED = 1000  # missed firings recorded one by one; beyond, one row sums up the rest
OUTCOMES = {0: "succeeded", 1: "failed", 2: "error", 3: "stopped"}


class SchedulerRunningError(ScheduleError):
    """Another scheduler already serves this journal."""

    def __init__(self, journal: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"a trail scheduler ({who}) already serves the journal {journal}; "
                         f"one scheduler per journal")


class SchedulerLock:
    """An exclusive ``flock`` on ``<journal>.scheduler.lock``: the kernel drops it when the
    holder dies, even by ``kill -9``, so a stale lock never blocks a restart."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = journal.with_name(journal.name.split(".")[0] + ".scheduler.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the process's life
        os.chmod(self.path, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SchedulerRunningError(self.journal, self.holder()) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def holder(self) -> int | None:
        """The pid of the scheduler holding the lock, or None if none runs."""
        if not self.path.exists():
            return None
        if self._file is None:
            with open(self.path) as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:
                    return None  # nobody holds it
        with contextlib.suppress(ValueError):
            return int(self.path.read_text().split()[0])
        return None


class Child(Protocol):
    pid: int

    def poll(self) -> int | None: ...


class Launcher(Protocol):
    """Starts a firing's run."""

    def start(self, schedule: Schedule, firing_id: int) -> tuple[Child, str | None]:
        """The started child and where its output goes."""
        ...


class SubprocessLauncher:
    """``python -m trail run RUNBOOK --plain`` with the schedule's answers (and notify URLs
    when ``trail run`` takes ``--notify``), output in ``<journal dir>/schedule-logs/``."""

    def __init__(self, journal: Path, pass_notify: bool) -> None:
        self.journal = journal
        self.pass_notify = pass_notify
        self.logs = journal.parent / "schedule-logs"

    def command(self, schedule: Schedule) -> list[str]:
        words = [sys.executable, "-m", "trail", "run", schedule.runbook, "--plain",
                 "--journal", str(self.journal)]
        for answer in schedule.answers:
            words += ["--answer", answer]
        if self.pass_notify:
            for url in schedule.notify:
                words += ["--notify", url]
        return words

    def start(self, schedule: Schedule, firing_id: int) -> tuple[Child, str | None]:
        self.logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.logs / f"{schedule.name}.{firing_id}.log"
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as out:
            child = subprocess.Popen(self.command(schedule), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     cwd=os.path.dirname(schedule.runbook) or None,
                                     start_new_session=True)
        return child, str(path)


class Scheduler:
    """Fires the schedules of one store; call ``tick`` for one pass or ``serve`` to loop."""

    def __init__(self, store: ScheduleStore, journal: Path, launcher: Launcher,
                 clock: Callable[[], float] = time.time, grace: float = GRACE) -> None:
        self.store = store
        self.journal = journal
        self.launcher = launcher
        self.clock = clock
        self.grace = grace
        self.children: dict[int, Child] = {}  # firing id -> the run we started

    # --- the loop ----------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; between passes, sleep until the next firing is due
        (at most POLL seconds, to see new schedules, requests and ended runs)."""
        self.adopt()
        # This 'while' loop is the scheduler: one pass, then sleep until something is due.
        while not stop.is_set():
            self.tick()
            wake = self.next_due()
            pause = POLL if wake is None else min(POLL, max(0.0, wake - self.clock()))
            log.debug("sleeping %.3f s (next firing due at %s)", pause, wake)
            stop.wait(pause)

    def next_due(self) -> float | None:
        due = [s.next_at for s in self.store.schedules() if not s.paused]
        return min(due) if due else None

    def adopt(self) -> None:
        """Firings a previous scheduler left: running ones are watched by pid. One whose pid
        was never written (the scheduler died while starting it) is matched to the journal's
        run of its runbook started since, if any; else it is lost, never redone."""
        known = {f.pid for f in self.store.firings(limit=10**9) if f.pid is not None}
        for firing in self.store.firings(states=("running",)):
            if firing.pid is None:
                try:
                    name = Path(self.store.get(firing.schedule).runbook).stem
                except ScheduleError:
                    name = None
                found = None if name is None else unclaimed_run(
                    self.journal, name, firing.started or firing.due, known)
                if found is None:
                    self.store.update_firing(firing.id, state="lost", ended=self.clock(),
                                             reason="the scheduler stopped while starting this"
                                                    " run, and the journal has no run of it")
                    continue
                run_id, pid = found
                known.add(pid)
                self.store.update_firing(firing.id, pid=pid, run_id=run_id)
                log.info("%s: firing %d is run %d (pid %d), found in the journal",
                         firing.schedule, firing.id, run_id, pid)
            else:
                log.info("watching run of %s (firing %d, pid %d) started by an earlier "
                         "scheduler", firing.schedule, firing.id, firing.pid)

    def tick(self) -> None:
        """One pass: reap, turn what is due into firings, start queued firings."""
        now = self.clock()
        self.reap(now)
        for schedule in self.store.schedules():
            if not schedule.paused and schedule.next_at <= now:
                self.fall_due(schedule, now)
        for firing in self.store.firings(states=("requested",)):
            with self.store.transaction() as db:
                schedule = self.store.get(firing.schedule)
                state, reason = self.admit(db, schedule, "manual")
                db.execute("UPDATE firings SET state = ?, reason = ? WHERE id = ?",
                           (state, reason, firing.id))
            if state == "skipped":
                log.info("skipped the requested firing of %s: %s", schedule.name, reason)
        self.start_queued(now)

    # --- deciding ----------------------------------------------------------------------

    def fall_due(self, schedule: Schedule, now: float) -> None:
        """Record the firings due since ``next_at`` and move ``next_at`` past now, in one
        transaction: a scheduler killed after it never fires them again."""
        dues: list[float] = []
        uncounted = 0  # missed interval firings jumped over, not listed one by one
        due = schedule.next_at
        every = schedule.timing.every
        while due <= now:
            if every is not None and len(dues) > MAX_MISSED and (now - due) // every > 1:
                jump = int((now - due) // every) - 1
                uncounted += jump
                due += jump * every
            dues.append(due)
            due = schedule.timing.next_after(due)
        next_at = due
        on_time = dues[-1] if now - dues[-1] <= self.grace else None
        missed = [d for d in dues if d != on_time]
        with self.store.transaction() as db:
            fire: list[tuple[float, str, str | None]] = []
            skip: list[tuple[float, str]] = []
            if schedule.catch_up == "all":
                fire += [(d, "catch-up", "missed while the scheduler was down or late; "
                          "catch-up all") for d in missed]
            elif schedule.catch_up == "latest" and missed and on_time is None:
                fire.append((missed[-1], "catch-up", f"the latest of {len(missed)} missed "
                             f"firing(s), caught up once (catch-up latest)"))
                skip += [(d, f"missed while the scheduler was down or late; only the latest "
                          f"missed firing ({_clock(missed[-1])}) is caught up "
                          f"(catch-up latest)") for d in missed[:-1]]
            else:
                later = "a later firing runs instead" if on_time is not None else \
                    "nothing missed is caught up"
                skip += [(d, f"missed while the scheduler was down or late; {later} "
                          f"(catch-up {schedule.catch_up})") for d in missed]
            if on_time is not None:
                fire.append((on_time, "time", None))
            self._record_skips(db, schedule.name, skip, uncounted)
            for when, trigger, note in fire:
                if trigger == "catch-up" and schedule.catch_up == "all":
                    state, reason = "queued", note  # every missed one runs, in turn
                else:
                    state, reason = self.admit(db, schedule, trigger)
                    if state != "skipped" and note:
                        reason = note
                self.store.add_firing(db, schedule.name, when, trigger, state, reason)
                if state == "skipped":
                    log.info("skipped %s due at %s: %s", schedule.name, _clock(when), reason)
                elif note:
                    log.info("%s: %s", schedule.name, note)
            self.store.set_next(db, schedule.name, next_at)

    def _record_skips(self, db: sqlite3.Connection, name: str,
                      skip: list[tuple[float, str]], uncounted: int = 0) -> None:
        for when, reason in skip[:MAX_MISSED]:
            self.store.add_firing(db, name, when, "time", "skipped", reason)
        if len(skip) > MAX_MISSED:
            rest = skip[MAX_MISSED:]
            self.store.add_firing(db, name, rest[-1][0], "time", "skipped",
                                  f"{len(rest) + uncounted} more firings from "
                                  f"{_clock(rest[0][0])} to {_clock(rest[-1][0])}: "
                                  f"{rest[-1][1]}")
        if skip:
            log.info("%s: %d missed firing(s) recorded as skipped", name,
                     len(skip) + uncounted)

    def admit(self, db: sqlite3.Connection, schedule: Schedule,
              trigger: str) -> tuple[str, str | None]:
        """Queue a firing, or skip it (and say why) per the schedule's overlap policy."""
        if schedule.overlap == "allow":
            return "queued", None
        busy = db.execute("SELECT id, run_id, pid, state, started FROM firings WHERE "
                          "schedule = ? AND state IN ('running', 'queued') ORDER BY id",
                          (schedule.name,)).fetchall()
        running = [row for row in busy if row[3] == "running"]
        waiting = [row for row in busy if row[3] == "queued"]
        if schedule.overlap == "skip" and busy:
            if running:
                fid, run_id, pid, _, started = running[0]
                run = f"run {run_id}" if run_id else f"firing {fid}"
                return "skipped", (f"overlap skip: {run} (pid {pid}) of this schedule is still "
                                   f"running since {_clock(started)}")
            return "skipped", f"overlap skip: firing {waiting[0][0]} is about to start"
        if schedule.overlap == "queue" and waiting:
            return "skipped", (f"overlap queue: firing {waiting[0][0]} already waits for the "
                               f"running one to end")
        return "queued", None

    # --- starting and reaping -----------------------------------------------------------

    def start_queued(self, now: float) -> None:
        for schedule in self.store.schedules():
            queued = self.store.firings(schedule.name, ("queued",))
            if not queued:
                continue
            running = self.store.firings(schedule.name, ("running",))
            chosen = queued if schedule.overlap == "allow" else \
                ([] if running else queued[:1])
            for firing in chosen:
                self.start(schedule, firing, now)

    def start(self, schedule: Schedule, firing: Firing, now: float) -> None:
        # Marked running before the process starts: if we die in between it is lost,
        # never run twice.
        self.store.update_firing(firing.id, state="running", started=now)
        try:
            child, out = self.launcher.start(schedule, firing.id)
        except OSError as exc:
            self.store.update_firing(firing.id, state="lost", ended=self.clock(),
                                     reason=f"could not start the run: {exc}")
            log.error("%s: could not start %s: %s", schedule.name, schedule.runbook, exc)
            return
        self.children[firing.id] = child
        self.store.update_firing(firing.id, pid=child.pid, log=out)
        log.info("fired %s (firing %d, %s): pid %d, output in %s", schedule.name, firing.id,
                 firing.trigger, child.pid, out)

    def reap(self, now: float) -> None:
        for firing in self.store.firings(states=("running",)):
            if firing.pid is None:
                continue
            run = journal_run(self.journal, firing.pid)
            run_id = run[0] if run else firing.run_id
            child = self.children.get(firing.id)
            if child is not None:
                code = child.poll()
                if code is None:
                    if run_id != firing.run_id:
                        self.store.update_firing(firing.id, run_id=run_id)
                    continue
                del self.children[firing.id]
                outcome = OUTCOMES.get(code, f"killed by signal {-code}" if code < 0
                                       else f"exit {code}")
            else:
                if pid_alive(firing.pid):
                    if run_id != firing.run_id:
                        self.store.update_firing(firing.id, run_id=run_id)
                    continue
                code = None  # not our child: its exit code is gone; the journal tells
                outcome = journal_outcome(self.journal, run_id)
            self.store.update_firing(firing.id, state="done", ended=now, exit_code=code,
                                     run_id=run_id, outcome=outcome)
            log.info("%s: firing %d (run %s) ended: %s", firing.schedule, firing.id, run_id,
                     outcome)


def pid_alive(pid: int) -> bool:
    """A live (not zombie) process with this pid that is a trail run."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(") ", 1)[1][0] in "ZX":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"trail" in cmdline.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _journal(journal: Path) -> sqlite3.Connection | None:
    if not journal.exists():
        return None
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout = 5000")
    return db


def journal_run(journal: Path, pid: int) -> tuple[int, float | None, str | None] | None:
    """The journal's run served by process ``pid`` (id, ended, outcome), if it has one."""
    db = _journal(journal)
    if db is None:
        return None
    try:
        row = db.execute("SELECT id, ended, outcome FROM runs WHERE pid = ? ORDER BY id DESC "
                         "LIMIT 1", (pid,)).fetchone()
    except sqlite3.OperationalError:  # no runs table yet: no run has started
        return None
    finally:
        db.close()
    return None if row is None else (int(row[0]), row[1], row[2])


def unclaimed_run(journal: Path, name: str, since: float,
                  claimed: set[int]) -> tuple[int, int] | None:
    """The first run of runbook ``name`` started at or after ``since`` whose process no
    firing claims: (run id, pid)."""
    db = _journal(journal)
    if db is None:
        return None
    try:
        rows = db.execute("SELECT id, pid FROM runs WHERE name = ? AND started >= ? ORDER BY id",
                          (name, since)).fetchall()
    except sqlite3.OperationalError:  # no runs table yet
        return None
    finally:
        db.close()
    return next(((int(i), int(p)) for i, p in rows if p is not None and p not in claimed), None)


def journal_outcome(journal: Path, run_id: int | None) -> str:
    """How a run ended, from its steps in the journal (for runs we did not start)."""
    db = _journal(journal)
    if db is None or run_id is None:
        return "ended (no run in the journal)"
    try:
        ended = db.execute("SELECT ended FROM runs WHERE id = ?", (run_id,)).fetchone()
        counts = dict(db.execute("SELECT state, COUNT(*) FROM steps WHERE run_id = ? "
                                 "GROUP BY state", (run_id,)).fetchall())
    finally:
        db.close()
    if not ended or ended[0] is None:
        return "died (its run was not closed; trail run takes it up)"
    if set(counts) <= {"Succeeded", "Skipped"}:
        return "succeeded"
    if {"Failed", "Blocked"} & set(counts):
        return "failed"
    return "stopped"


def _clock(moment: float | None) -> str:
    if moment is None:
        return "?"
    return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
