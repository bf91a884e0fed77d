"""Step states, the actions that change them, and the one table that says which may.

The table is the single place that answers "what may this call do to a step in this
state": the API handlers ask it which steps an action selects (``states_for``), and the
manager asks it for the next state (``transition``). Nothing else decides.
"""

from __future__ import annotations

from enum import Enum

from trail.errors import TransitionError


class State(str, Enum):
    """A step's state. The values are AutoTrail's strings, so status rows read the same."""

    READY = "Ready"
    WAITING = "Waiting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    BLOCKED = "Blocked"
    PAUSED = "Paused"
    INTERRUPTED = "Interrupted"
    PAUSED_ON_FAIL = "Paused due to failure"
    TO_SKIP = "To Skip"
    TO_BLOCK = "To Block"
    TO_PAUSE = "To Pause"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        """Done states let the step's children run."""
        return self in DONE_STATES

    @property
    def ignored(self) -> bool:
        """Ignore states stop the branch below the step."""
        return self in IGNORE_STATES

    @property
    def finished(self) -> bool:
        """Nothing more happens to a step in a finished state unless an operator acts."""
        return self in DONE_STATES or self in IGNORE_STATES


DONE_STATES = frozenset({State.SUCCEEDED, State.SKIPPED})
IGNORE_STATES = frozenset({State.FAILED, State.BLOCKED})


class Action(str, Enum):
    """What can happen to a step: an operator's API call or the engine's own move."""

    # Asked for by an operator.
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    RESUME_BRANCH = "resume_branch"
    NEXT_STEP = "next_step"
    SKIP = "skip"
    UNSKIP = "unskip"
    BLOCK = "block"
    UNBLOCK = "unblock"
    INTERRUPT = "interrupt"
    RERUN = "rerun"
    # Made by the engine.
    RUN = "run"
    SUCCEED = "succeed"
    FAIL = "fail"
    FAIL_AND_PAUSE = "fail and pause"
    ARRIVE = "arrive"  # the step's parents are done: a pending To-state takes effect
    SKIP_PROGENY = "skip as progeny of a failed step"
    RETRY = "retry"  # a failed attempt with retries left: wait, then run again
    # Taking up a run whose server died: what was running is no longer.
    RECOVER = "recover"  # the operator decides whether it runs again
    RECOVER_AGAIN = "recover and run again"  # an idempotent step runs again by itself

    def __str__(self) -> str:
        return self.value


_S, _A = State, Action
_HOLD = {_A.PAUSE: _S.TO_PAUSE, _A.SKIP: _S.TO_SKIP, _A.BLOCK: _S.TO_BLOCK}
# Interrupted steps resume only by name (resume, rerun), never as part of a branch or a
# next_step, as in AutoTrail: an interrupted step is one an operator stopped on purpose.
_RELEASE = {_A.RESUME: _S.WAITING, _A.RESUME_BRANCH: _S.WAITING, _A.NEXT_STEP: _S.WAITING}

TRANSITIONS: dict[State, dict[Action, State]] = {
    _S.READY: {_A.START: _S.WAITING, **_HOLD, _A.SKIP_PROGENY: _S.SKIPPED},
    _S.WAITING: {_A.RUN: _S.RUNNING, **_HOLD, _A.SKIP_PROGENY: _S.SKIPPED},
    _S.RUNNING: {
        _A.SUCCEED: _S.SUCCEEDED,
        _A.FAIL: _S.FAILED,
        _A.FAIL_AND_PAUSE: _S.PAUSED_ON_FAIL,
        _A.INTERRUPT: _S.INTERRUPTED,
        _A.RETRY: _S.WAITING,
        _A.RECOVER: _S.INTERRUPTED,
        _A.RECOVER_AGAIN: _S.WAITING,
    },
    _S.TO_PAUSE: {
        **_RELEASE,
        _A.SKIP: _S.TO_SKIP,
        _A.BLOCK: _S.TO_BLOCK,
        _A.ARRIVE: _S.PAUSED,
        _A.SKIP_PROGENY: _S.SKIPPED,
    },
    _S.PAUSED: {**_RELEASE, _A.SKIP: _S.TO_SKIP, _A.BLOCK: _S.TO_BLOCK},
    _S.PAUSED_ON_FAIL: {
        **_RELEASE,
        _A.RERUN: _S.WAITING,
        _A.SKIP: _S.TO_SKIP,
        _A.BLOCK: _S.TO_BLOCK,
    },
    _S.INTERRUPTED: {
        _A.RESUME: _S.WAITING,
        _A.RERUN: _S.WAITING,
        _A.SKIP: _S.TO_SKIP,
        _A.BLOCK: _S.TO_BLOCK,
    },
    _S.FAILED: {_A.RERUN: _S.WAITING},
    _S.TO_SKIP: {_A.UNSKIP: _S.WAITING, _A.ARRIVE: _S.SKIPPED},
    # trail also unblocks a Blocked step (AutoTrail only a To-Block one): a superset.
    _S.TO_BLOCK: {_A.UNBLOCK: _S.WAITING, _A.ARRIVE: _S.BLOCKED},
    _S.BLOCKED: {_A.UNBLOCK: _S.WAITING},
    _S.SUCCEEDED: {},
    _S.SKIPPED: {},
}

# set_pause_on_fail / unset_pause_on_fail change a flag, not a state, on steps that
# have not yet run to an end (AutoTrail's set).
PAUSE_ON_FAIL_STATES = frozenset(
    {_S.READY, _S.WAITING, _S.INTERRUPTED, _S.TO_PAUSE, _S.PAUSED}
)


def transition(state: State, action: Action) -> State:
    """The state a step in ``state`` moves to on ``action``; TransitionError if it may not."""
    try:
        return TRANSITIONS[state][action]
    except KeyError:
        raise TransitionError(state.value, action.value) from None


def states_for(action: Action) -> frozenset[State]:
    """Every state from which ``action`` is allowed."""
    return _STATES_FOR[action]


_STATES_FOR: dict[Action, frozenset[State]] = {
    action: frozenset(s for s, moves in TRANSITIONS.items() if action in moves)
    for action in Action
}
