"""The runbook the scheduler tests fire: `work` sleeps SCHED_SLEEP seconds between writing
"start PID TIME" and "end PID TIME" to SCHED_LOG; then `ask` asks a question (the
schedules pre-answer it with --answer ask=yes) and returns the reply."""

import os
import time

from trail import Step

LOG = os.environ["SCHED_LOG"]
SLEEP = float(os.environ.get("SCHED_SLEEP", "0"))


def note(word: str) -> None:
    with open(LOG, "a") as log:
        log.write(f"{word} {os.getppid()} {time.time()}\n")


def work(trail_env, context):
    note("start")
    time.sleep(SLEEP)
    note("end")
    return "worked"


def ask(trail_env, context):
    return trail_env.input("go on?")


trail = [(Step(work, name="work"), Step(ask, name="ask"))]
