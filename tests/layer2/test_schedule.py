"""Schedules on a clock the test controls: DST nights in Europe/Berlin, catch-up after
downtime, overlap policies, pause/resume, bad input. Runs are started by a launcher that
records them (the real `trail run` processes are in tests/e2e/test_scheduler.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from trail.layer2.schedule import Schedule, ScheduleError, Scheduler, ScheduleStore, Timing
from trail.layer2.schedule.timing import careful_next_cron, next_cron, parse_every

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=BERLIN, fold=fold).timestamp()  # type: ignore[misc, arg-type]


def fires(expr: str, start: float, end: float, tz: ZoneInfo = BERLIN) -> list[str]:
    """Every firing of ``expr`` in (start, end], as ISO times with their UTC offset."""
    found, moment = [], start
    while (moment := next_cron(expr, tz, moment)) <= end:
        found.append(datetime.fromtimestamp(moment, tz).isoformat())
    return found


# --- the next-fire computation on fixed dates -----------------------------------------------

def test_fold_fires_once_at_the_first_half_past_two() -> None:
    # 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET; 02:30 happens twice.
    assert fires("30 2 * * *", berlin(2026, 10, 24, 12), berlin(2026, 10, 26, 12)) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_fold_from_inside_the_repeated_hour_does_not_fire_again() -> None:
    # A scheduler asking at 02:15 CET (the second pass) must not fire 02:30 a second time.
    assert fires("30 2 * * *", berlin(2026, 10, 25, 2, 15, fold=1),
                 berlin(2026, 10, 26, 12)) == ["2026-10-26T02:30:00+01:00"]


def test_gap_fires_once_at_the_next_valid_time() -> None:
    # 2026-03-29: at 02:00 CET the clocks jump to 03:00 CEST; 02:30 does not exist.
    assert fires("30 2 * * *", berlin(2026, 3, 28, 12), berlin(2026, 3, 30, 12)) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_hourly_job_runs_in_both_passes_of_the_repeated_hour_and_skips_the_missing_one() -> None:
    assert fires("0 * * * *", berlin(2026, 10, 25, 0, 30), berlin(2026, 10, 25, 3, 30)) == [
        "2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    assert fires("*/30 * * * *", berlin(2026, 3, 29, 1, 0), berlin(2026, 3, 29, 3, 30)) == [
        "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]


@pytest.mark.parametrize("expr", ["30 2 * * *", "0 * * * *", "*/20 * * * *", "15 3 * * 0",
                                  "0 0 1 * *", "45 1-4 * * *"])
def test_the_quick_path_agrees_with_the_careful_walk_all_year(expr: str) -> None:
    moment = berlin(2026, 1, 1)
    while moment < berlin(2027, 1, 1):
        assert next_cron(expr, BERLIN, moment) == careful_next_cron(expr, BERLIN, moment), \
            datetime.fromtimestamp(moment, BERLIN)
        moment += 3 * 3600 + 17 * 60 + 0.5  # drifts across every hour of the day


def test_intervals_and_bad_timings() -> None:
    assert [parse_every(t) for t in ("30s", "5m", "1h", "1d", "1.5s")] == [30, 300, 3600,
                                                                          86400, 1.5]
    assert Timing(every=300).next_after(1000.0) == 1300.0
    for bad in ("5", "5x", "0s", "-1m", ""):
        with pytest.raises(ScheduleError, match="not a duration"):
            parse_every(bad)
    with pytest.raises(ScheduleError, match="bad cron expression"):
        Timing(cron="61 * * * *")
    with pytest.raises(ScheduleError, match="needs 5 fields"):
        Timing(cron="* * *")
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        Timing(cron="0 3 * * *", tz="Mars/Olympus")
    with pytest.raises(ScheduleError, match="either --cron"):
        Timing()


# --- the scheduler on a clock the test moves ------------------------------------------------

@dataclass
class Child:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class Recorder:
    """Starts nothing: records each start and hands back a child the test ends."""

    clock: Clock
    started: list[tuple[str, float]] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

    def start(self, schedule: Schedule, firing_id: int) -> tuple[Child, str | None]:
        self.started.append((schedule.name, self.clock.now))
        child = Child(pid=2**22 + firing_id)  # above pid_max's default: never a live process
        self.children.append(child)
        return child, None

    def finish_all(self, code: int = 0) -> None:
        for child in self.children:
            if child.code is None:
                child.code = code


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


class Rig:
    """A scheduler on a store in ``tmp``, a clock the test moves, a recording launcher."""

    def __init__(self, tmp: Path) -> None:
        self.clock = Clock(berlin(2026, 10, 24, 12))
        self.store = ScheduleStore(tmp / "journal.schedules.sqlite3")
        self.launcher = Recorder(self.clock)
        self.scheduler = Scheduler(self.store, tmp / "journal.sqlite3", self.launcher,
                                   clock=self.clock)
        self.book = str(tmp / "book.py")

    def add(self, name: str, timing: Timing, **options: Any) -> None:
        self.store.add(Schedule(name, self.book, timing, **options), now=self.clock.now)

    def step_to(self, end: float, step: float = 60.0, finish: bool = True) -> None:
        """Tick every ``step`` seconds until ``end``; runs end at once if ``finish``."""
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + step)
            self.scheduler.tick()
            if finish:
                self.launcher.finish_all()
        self.scheduler.tick()

    def started_at(self) -> list[str]:
        return [datetime.fromtimestamp(t, BERLIN).isoformat(timespec="minutes")
                for _, t in self.launcher.started]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_scheduler_fires_a_berlin_job_once_when_the_clocks_go_back(rig: Rig) -> None:
    rig.add("nightly", Timing(cron="30 2 * * *", tz="Europe/Berlin"))
    rig.step_to(berlin(2026, 10, 26, 6), step=300)
    assert rig.started_at() == ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"]
    assert rig.store.skipped("nightly")[0] == 0


def test_scheduler_fires_a_berlin_job_once_at_three_when_the_clocks_go_forward(rig: Rig) -> None:
    rig.clock.now = berlin(2026, 3, 28, 12)
    rig.add("nightly", Timing(cron="30 2 * * *", tz="Europe/Berlin"))
    rig.step_to(berlin(2026, 3, 30, 6), step=300)
    assert rig.started_at() == ["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"]


def down_for_five_hours(rig: Rig, catch_up: str) -> None:
    rig.add("hourly", Timing(cron="0 * * * *", tz="Europe/Berlin"), catch_up=catch_up)
    rig.step_to(berlin(2026, 10, 24, 13, 30))  # fires 13:00
    rig.clock.now = berlin(2026, 10, 24, 18, 30)  # down from 13:30 to 18:30: 14..18 missed
    rig.scheduler.tick()
    rig.launcher.finish_all()
    rig.step_to(berlin(2026, 10, 24, 20, 30))


def test_catch_up_latest_fires_the_latest_missed_once_and_says_why_others_skipped(rig: Rig) -> None:
    down_for_five_hours(rig, "latest")
    times = [(t - berlin(2026, 10, 24, 0)) / 3600 for _, t in rig.launcher.started]
    assert times == [13, 18.5, 19, 20]
    firings = rig.store.firings("hourly")
    caught = [f for f in firings if f.trigger == "catch-up"]
    assert [datetime.fromtimestamp(f.due, BERLIN).hour for f in caught] == [18]
    assert "caught up once" in (caught[0].reason or "")
    count, skipped = rig.store.skipped("hourly")
    assert count == 4
    assert [datetime.fromtimestamp(f.due, BERLIN).hour for f in skipped] == [14, 15, 16, 17]
    assert all("only the latest missed firing" in (f.reason or "") for f in skipped)


def test_catch_up_none_fires_nothing_missed_and_records_each(rig: Rig) -> None:
    down_for_five_hours(rig, "none")
    times = [(t - berlin(2026, 10, 24, 0)) / 3600 for _, t in rig.launcher.started]
    assert times == [13, 19, 20]
    count, skipped = rig.store.skipped("hourly")
    assert count == 5 and all("catch-up none" in (f.reason or "") for f in skipped)


def test_catch_up_all_runs_every_missed_firing_one_after_another(rig: Rig) -> None:
    rig.add("hourly", Timing(cron="0 * * * *", tz="Europe/Berlin"), catch_up="all")
    rig.step_to(berlin(2026, 10, 24, 13, 30))
    rig.clock.now = berlin(2026, 10, 24, 18, 30)
    for _ in range(5):
        rig.scheduler.tick()
        # overlap skip still holds: one at a time, the next after the previous ended
        assert sum(c.code is None for c in rig.launcher.children) == 1
        rig.launcher.finish_all()
    assert len(rig.launcher.started) == 1 + 5
    assert rig.store.skipped("hourly")[0] == 0


def test_overlap_skip_records_each_skipped_firing_with_the_running_run(rig: Rig) -> None:
    rig.add("probe", Timing(every=60), overlap="skip")
    rig.step_to(rig.clock.now + 300, finish=False)  # the first run never ends
    assert len(rig.launcher.started) == 1
    count, skipped = rig.store.skipped("probe")
    assert count == 4
    assert all("overlap skip" in (f.reason or "") and "still running" in (f.reason or "")
               for f in skipped)
    rig.launcher.finish_all()
    rig.step_to(rig.clock.now + 60, finish=False)
    assert len(rig.launcher.started) == 2
    assert [f.outcome for f in rig.store.firings("probe", ("done",))] == ["succeeded"]


def test_overlap_queue_keeps_one_waiting_and_allow_runs_them_together(rig: Rig) -> None:
    rig.add("queued", Timing(every=60), overlap="queue")
    rig.add("allowed", Timing(every=60), overlap="allow")
    rig.step_to(rig.clock.now + 180, finish=False)
    started = [name for name, _ in rig.launcher.started]
    assert started.count("allowed") == 3 and started.count("queued") == 1
    assert len(rig.store.firings("queued", ("queued",))) == 1
    _, skipped = rig.store.skipped("queued")
    assert len(skipped) == 1 and "already waits" in (skipped[0].reason or "")
    rig.launcher.finish_all()
    rig.scheduler.tick()  # reaps, then starts the waiting one
    started = [name for name, _ in rig.launcher.started]
    assert started.count("queued") == 2


def test_pause_stops_firing_and_resume_starts_from_now_without_catching_up(rig: Rig) -> None:
    rig.add("probe", Timing(every=60))
    rig.step_to(rig.clock.now + 120)
    assert len(rig.launcher.started) == 2
    rig.store.set_paused("probe", True)
    rig.step_to(rig.clock.now + 600)
    assert len(rig.launcher.started) == 2
    resumed = rig.store.set_paused("probe", False, now=rig.clock.now)
    assert resumed.next_at == rig.clock.now + 60
    rig.step_to(rig.clock.now + 60)
    assert len(rig.launcher.started) == 3
    assert rig.store.skipped("probe")[0] == 0


def test_fire_now_is_a_manual_firing_under_the_overlap_policy(rig: Rig) -> None:
    rig.add("rare", Timing(cron="0 0 1 1 *", tz="UTC"))
    rig.store.request("rare", now=rig.clock.now)
    rig.scheduler.tick()
    assert len(rig.launcher.started) == 1
    rig.store.request("rare", now=rig.clock.now)
    rig.scheduler.tick()
    assert len(rig.launcher.started) == 1
    _, skipped = rig.store.skipped("rare")
    assert skipped[0].trigger == "manual" and "overlap skip" in (skipped[0].reason or "")


def test_store_refuses_a_duplicate_or_unknown_name(rig: Rig) -> None:
    rig.add("probe", Timing(every=60))
    with pytest.raises(ScheduleError, match="'probe' exists already"):
        rig.add("probe", Timing(every=30))
    with pytest.raises(ScheduleError, match="no schedule named 'nope'.*probe"):
        rig.store.get("nope")
    with pytest.raises(ScheduleError, match="--overlap 'sometimes'"):
        rig.add("other", Timing(every=60), overlap="sometimes")


def test_a_long_down_time_is_recorded_without_a_row_per_second(rig: Rig) -> None:
    rig.add("fast", Timing(every=1), catch_up="none")
    rig.scheduler.tick()
    rig.clock.now += timedelta(days=1).total_seconds()
    rig.scheduler.tick()
    count, skipped = rig.store.skipped("fast", limit=1)
    assert count == 1001
    assert "85399 more firings" in (skipped[-1].reason or "")  # 86400: 1000 listed, 1 fired
    assert len(rig.launcher.started) == 1  # the on-time one
    assert rig.store.get("fast").next_at == rig.clock.now + 1


def test_a_year_down_with_an_every_second_schedule_is_quick(rig: Rig) -> None:
    rig.add("fast", Timing(every=1), catch_up="none")
    rig.clock.now += 366 * 86400.0
    rig.scheduler.tick()  # jumps over the missed seconds instead of listing 31 million
    count, skipped = rig.store.skipped("fast", limit=1)
    assert "more firings" in (skipped[-1].reason or "")
    assert rig.store.get("fast").next_at == rig.clock.now + 1


def test_a_firing_whose_pid_was_never_written_is_found_in_the_journal_or_lost(rig: Rig) -> None:
    from trail.layer1.journal import Journal

    rig.add("probe", Timing(every=60))
    rig.add("other", Timing(every=60))
    with rig.store.transaction() as db:  # a scheduler died between these and the pids
        found = rig.store.add_firing(db, "probe", rig.clock.now, "time", "running")
        lost = rig.store.add_firing(db, "other", rig.clock.now, "time", "running")
        db.execute("UPDATE firings SET started = ? WHERE id IN (?, ?)",
                   (rig.clock.now - 5, found, lost))
    journal = Journal(rig.scheduler.journal)
    run_id = journal.new_run("book", {"steps": [], "edges": []}, [], None)  # probe's run
    journal.close()
    rig.scheduler.adopt()
    by_id = {f.id: f for f in rig.store.firings()}
    assert by_id[found].state == "running" and by_id[found].run_id == run_id
    assert by_id[lost].state == "lost"  # its run was claimed already: never fired again
    assert "the journal has no run of it" in (by_id[lost].reason or "")


def test_runs_are_started_as_trail_run_plain_with_answers_and_notify_only_if_run_takes_it(
        tmp_path: Path) -> None:
    import sys

    from trail.layer2.cli import main
    from trail.layer2.cli.schedule import run_takes_notify
    from trail.layer2.schedule import SubprocessLauncher

    journal = tmp_path / "journal.sqlite3"
    schedule = Schedule("nightly", "/books/backup.py", Timing(every=60),
                        answers=["confirm=yes", "host=db2"], notify=["https://hooks.example/x"])
    base = [sys.executable, "-m", "trail", "run", "/books/backup.py", "--plain", "--journal",
            str(journal), "--answer", "confirm=yes", "--answer", "host=db2"]
    assert SubprocessLauncher(journal, pass_notify=False).command(schedule) == base
    assert SubprocessLauncher(journal, pass_notify=True).command(schedule) == \
        base + ["--notify", "https://hooks.example/x"]
    offered = any("--notify" in getattr(p, "opts", ()) for p in main.commands["run"].params)
    assert run_takes_notify(main) is offered
