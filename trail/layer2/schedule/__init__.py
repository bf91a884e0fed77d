"""Schedules: runbooks fired by a cron expression in a zone or at an interval.

``timing`` computes when (DST-correct, via cronsim), ``store`` keeps schedules and every
firing (fired, queued, skipped with its reason) in SQLite beside the journal, and
``scheduler`` is the one long-running process per journal that starts each firing as an
ordinary ``trail run RUNBOOK --plain``.
"""

from trail.layer2.schedule.scheduler import Launcher, Scheduler, SchedulerLock, SubprocessLauncher
from trail.layer2.schedule.store import Firing, Schedule, ScheduleStore, store_path
from trail.layer2.schedule.timing import ScheduleError, Timing

__all__ = ["Firing", "Launcher", "Schedule", "ScheduleError", "ScheduleStore", "Scheduler",
           "SchedulerLock", "SubprocessLauncher", "Timing", "store_path"]
