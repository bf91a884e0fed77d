"""The runbook the crash tests kill: STEPS short steps in a chain, each appending its name
to LOG (its side effect, counted at the end), and one step that asks a question."""

import os
import time

from trail import Step

LOG = os.environ["CRASH_LOG"]
COUNT = int(os.environ.get("CRASH_STEPS", "200"))
ASK_AT = int(os.environ.get("CRASH_ASK_AT", "-1"))
SLEEP = float(os.environ.get("CRASH_SLEEP", "0.004"))


def work(name: str):
    def action(trail_env, context):
        time.sleep(SLEEP)
        with open(LOG, "a") as log:
            log.write(name + "\n")
        if name == f"s{ASK_AT}":
            return trail_env.input(f"{name}: go on?")
        return name

    return action


steps = [Step(work(f"s{i}"), name=f"s{i}") for i in range(COUNT)]
trail = list(zip(steps, steps[1:], strict=False)) or steps[0]
