"""The runbook the value tests kill: steps that return values JSON cannot hold as they are,
and one that raises an exception that cannot be pickled out of the step's process."""

import datetime
import decimal
import threading

from trail import Step


def a_date(trail_env, context):
    trail_env.output(datetime.date(2024, 1, 2))
    return datetime.date(2024, 1, 2)


def a_decimal(trail_env, context):
    return decimal.Decimal("1.10")


def a_set(trail_env, context):
    trail_env.output({3, 1, 2})
    return {3, 1, 2}


def raises_unpicklable(trail_env, context):
    class LocalError(Exception):
        """Defined in the step: pickle cannot find it by name, so it cannot cross."""

        def __init__(self, message: str) -> None:
            super().__init__(message)
            self.lock = threading.Lock()

    raise LocalError("the disk is full")


date_step = Step(a_date, name="date")
decimal_step = Step(a_decimal, name="decimal")
set_step = Step(a_set, name="set")
raise_step = Step(raises_unpicklable, name="raise", pause_on_fail=False)
def hold(trail_env, context):
    """Keeps the run open (a run whose steps all ended is over and its server gone) so the
    test can read its status before and after the kill."""
    return trail_env.input("keep the run open?")


trail = [date_step >> decimal_step >> set_step >> raise_step, Step(hold, name="hold")]
