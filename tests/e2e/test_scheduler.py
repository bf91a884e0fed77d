"""A real `trail scheduler` process firing a real runbook as `trail run` processes: runs
in the journal's history, overlap skip recorded, one scheduler per journal, kill -9 and
restart without a firing doubled, pause/resume and fire-now from the CLI, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import DEADLINE, wait_until

ROOT = Path(__file__).parents[2]
BOOK = str(Path(__file__).with_name("schedule_runbook.py"))


class Trail:
    """The `trail` command and a `trail scheduler` process on one private journal."""

    def __init__(self, tmp: Path, sleep: float = 0.0) -> None:
        self.journal = str(tmp / "state" / "journal.sqlite3")
        self.log = tmp / "runs.log"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHED_LOG": str(self.log),
                    "SCHED_SLEEP": str(sleep)}
        self.schedulers: list[subprocess.Popen[str]] = []

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "trail", *args, "--journal", self.journal],
                              env=self.env, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def add(self, name: str, *args: str) -> None:
        self("schedule", "add", name, BOOK, "--answer", "ask=yes", *args)

    def ls(self, name: str) -> dict[str, Any]:
        return json.loads(self("schedule", "ls", name, "--json", "--firings", "1000").stdout)

    def firings(self, name: str, *states: str) -> list[dict[str, Any]]:
        """Firings of ``name`` (in the given states), from the schedules file."""
        import sqlite3

        path = Path(self.journal).with_name("journal.schedules.sqlite3")
        db = sqlite3.connect(path)
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute(
            "SELECT * FROM firings WHERE schedule = ? ORDER BY id", (name,))]
        db.close()
        return [row for row in rows if not states or row["state"] in states]

    def start_scheduler(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "trail", "scheduler", "--journal", self.journal],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.schedulers.append(process)
        lock = Path(self.journal).with_name("journal.scheduler.lock")
        wait_until(lambda: lock.exists() and lock.read_text().strip() == str(process.pid)
                   or process.poll() is not None, "the scheduler to take its lock")
        assert process.poll() is None, process.communicate()
        return process

    def history(self) -> list[dict[str, Any]]:
        return json.loads(self("history", "--json", "--limit", "1000").stdout)

    def intervals(self) -> list[tuple[float, float]]:
        """(start, end) of each run's `work` step, from the runbook's own log."""
        starts: dict[str, float] = {}
        spans = []
        for line in self.log.read_text().splitlines():
            word, pid, moment = line.split()
            if word == "start":
                starts[pid] = float(moment)
            else:
                spans.append((starts.pop(pid), float(moment)))
        return sorted(spans)

    def close(self) -> None:
        for process in self.schedulers:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)
        # Runs are their own sessions and outlive a scheduler; end what is left.
        path = Path(self.journal).with_name("journal.schedules.sqlite3")
        if path.exists():
            import sqlite3

            db = sqlite3.connect(path)
            for (pid,) in db.execute("SELECT pid FROM firings WHERE pid IS NOT NULL AND "
                                     "state = 'running'"):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            db.close()


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Trail]:
    made = Trail(tmp_path)
    yield made
    made.close()


@pytest.fixture
def slow_trail(tmp_path: Path) -> Iterator[Trail]:
    made = Trail(tmp_path, sleep=2.5)
    yield made
    made.close()


def no_two_at_once(spans: list[tuple[float, float]]) -> None:
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"two runs at once: {spans}"


def test_every_2s_fires_runs_that_show_in_the_history_with_their_answers(trail: Trail) -> None:
    trail.add("tick", "--every", "2s")
    trail.start_scheduler()
    wait_until(lambda: len(trail.firings("tick", "done")) >= 3, "three runs to end",
               timeout=DEADLINE * 2)
    done = trail.firings("tick", "done")[:3]
    # Every firing is due 2 s after the one before and is accounted for: run, or (on a
    # machine so loaded that a run outlasts 2 s) skipped with the overlap as its reason.
    every = [f for f in trail.firings("tick") if f["id"] <= done[-1]["id"]]
    assert [f["due"] - every[0]["due"] for f in every] == [2 * i for i in range(len(every))]
    for firing in every:
        assert firing["state"] == "done" or (firing["state"] == "skipped"
                                             and "overlap skip" in firing["reason"]), firing
    assert [f["outcome"] for f in done] == ["succeeded"] * 3
    assert [f["exit_code"] for f in done] == [0, 0, 0]
    history = {run["id"]: run for run in trail.history()}
    for firing in done:
        run = history[firing["run_id"]]
        assert run["name"] == "schedule_runbook"
        assert run["counts"] == {"Succeeded": 2}
    timeline = json.loads(trail("history", str(done[0]["run_id"]), "--json").stdout)
    replies = [e["message"] for e in timeline["timeline"] if e["kind"] == "input"]
    assert replies == ["yes"]  # --answer ask=yes reached the run
    listed = trail.ls("tick")
    assert listed["last_run"]["id"] >= done[-1]["id"]
    assert listed["paused"] is False and listed["next_at"] > done[-1]["due"]


def test_overlap_skip_never_runs_two_at_once_and_records_each_skip(slow_trail: Trail) -> None:
    trail = slow_trail
    trail.add("slow", "--every", "1s", "--overlap", "skip")
    trail.start_scheduler()
    wait_until(lambda: len(trail.firings("slow", "done")) >= 2, "two slow runs to end",
               timeout=DEADLINE * 2)
    no_two_at_once(trail.intervals())
    listed = trail.ls("slow")
    overlapped = [f for f in listed["skipped"]
                  if "overlap skip" in f["reason"] and "still running" in f["reason"]]
    assert len(overlapped) >= 2
    assert all(f["reason"] for f in listed["skipped"])  # (a loaded machine may be late too)
    shown = trail("schedule", "ls").stdout
    assert "overlap skip" in shown


def test_second_scheduler_refused_and_kill_9_restart_neither_loses_nor_doubles(
        slow_trail: Trail) -> None:
    trail = slow_trail
    trail.add("steady", "--every", "1s")
    first = trail.start_scheduler()
    second = subprocess.run([sys.executable, "-m", "trail", "scheduler", "--journal",
                             trail.journal], env=trail.env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"trail: error: a trail scheduler (pid {first.pid}) already serves the journal "
        f"{trail.journal}; one scheduler per journal"]

    wait_until(lambda: trail.firings("steady", "running") and
               trail.firings("steady", "running")[0]["pid"], "a run to start")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    orphan = trail.firings("steady", "running")[0]
    time.sleep(1.5)  # the scheduler is down while firings fall due
    trail.start_scheduler()  # the dead one's lock file is still there: no matter
    wait_until(lambda: any(f["id"] == orphan["id"] for f in trail.firings("steady", "done")),
               "the run the killed scheduler started to be seen ending")
    wait_until(lambda: len([f for f in trail.firings("steady", "done")
                            if f["id"] > orphan["id"]]) >= 1, "a run fired after the restart",
               timeout=DEADLINE * 2)
    for process in trail.schedulers:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    wait_until(lambda: not trail.firings("steady", "running") or all(
        not Path(f"/proc/{f['pid']}").exists() for f in trail.firings("steady", "running")),
        "the last run to end")

    firings = trail.firings("steady")
    dues = [f["due"] for f in firings if f["trigger"] != "manual"]
    assert len(dues) == len(set(dues)), "a firing was recorded twice"
    started = [f for f in firings if f["state"] in ("running", "done")]
    run_ids = [f["run_id"] for f in started if f["run_id"] is not None]
    assert len(run_ids) == len(set(run_ids))
    ours = [run for run in trail.history() if run["pid"] in {f["pid"] for f in started}]
    assert len(ours) == len(started), "a run without its firing, or a firing run twice"
    adopted = next(f for f in firings if f["id"] == orphan["id"])
    assert adopted["outcome"] == "succeeded" and adopted["exit_code"] is None  # from the journal
    skipped = [f for f in firings if f["state"] == "skipped"]
    assert skipped and all(f["reason"] for f in skipped)
    no_two_at_once(trail.intervals())


def test_pause_resume_and_fire_now_from_the_command_line(trail: Trail) -> None:
    trail.add("fast", "--every", "1s", "--paused")
    trail.add("yearly", "--cron", "0 0 1 1 *", "--tz", "Europe/Berlin")
    trail.start_scheduler()
    said = trail("schedule", "run", "yearly").stdout
    assert "requested; the scheduler (pid" in said
    wait_until(lambda: trail.firings("yearly", "done"), "the fired-now run to end")
    assert trail.firings("yearly")[0]["trigger"] == "manual"
    time.sleep(1.5)
    assert trail.firings("fast") == []  # paused: nothing fires
    assert "resumed" in trail("schedule", "resume", "fast").stdout
    wait_until(lambda: trail.firings("fast", "done"), "a run after resume")
    trail("schedule", "pause", "fast")
    wait_until(lambda: not trail.firings("fast", "running"), "the last run to end")
    count = len(trail.firings("fast"))
    time.sleep(2.0)
    assert len(trail.firings("fast")) == count
    assert trail.ls("fast")["paused"] is True
    trail("schedule", "rm", "fast")
    listed = json.loads(trail("schedule", "ls", "--json").stdout)
    assert [row["name"] for row in listed] == ["yearly"]


@pytest.mark.parametrize(("args", "error"), [
    (["add", "x", BOOK, "--cron", "99 * * * *"], "bad cron expression '99 * * * *'"),
    (["add", "x", BOOK, "--cron", "0 3 * * *", "--tz", "Europe/Nowhere"],
     "unknown time zone 'Europe/Nowhere'"),
    (["add", "x", "/nonexistent/book.py", "--every", "1h"], "no runbook at /nonexistent/book.py"),
    (["add", "x", BOOK, "--every", "soon"], "--every 'soon' is not a duration"),
    (["add", "x", BOOK, "--cron", "0 3 * * *", "--every", "1h"], "give either --cron"),
    (["add", "dup", BOOK, "--every", "1h"], "a schedule named 'dup' exists already"),
    (["rm", "ghost"], "no schedule named 'ghost'"),
    (["pause", "ghost"], "no schedule named 'ghost'"),
])
def test_bad_input_is_one_clear_line(trail: Trail, args: list[str], error: str) -> None:
    trail("schedule", "add", "dup", BOOK, "--every", "1h")
    done = trail("schedule", *args, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trail: error: ") and error in lines[0], lines
