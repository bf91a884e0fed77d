import pytest

from trail.core import TRANSITIONS, Action, State, Step, states_for, transition
from trail.errors import TransitionError


def test_state_values_are_autotrails_strings():
    assert {s.value for s in State} == {
        "Ready", "Waiting", "Running", "Succeeded", "Failed", "Skipped", "Blocked", "Paused",
        "Interrupted", "Paused due to failure", "To Skip", "To Block", "To Pause",
    }
    assert Step.WAIT == "Waiting" and Step.TOPAUSE == "To Pause" and Step.RUN == "Running"


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(
    "state, action, expected",
    [
        (State.READY, Action.START, State.WAITING),
        (State.READY, Action.PAUSE, State.TO_PAUSE),
        (State.WAITING, Action.RUN, State.RUNNING),
        (State.RUNNING, Action.SUCCEED, State.SUCCEEDED),
        (State.RUNNING, Action.FAIL_AND_PAUSE, State.PAUSED_ON_FAIL),
        (State.RUNNING, Action.INTERRUPT, State.INTERRUPTED),
        (State.TO_PAUSE, Action.ARRIVE, State.PAUSED),
        (State.TO_SKIP, Action.ARRIVE, State.SKIPPED),
        (State.TO_BLOCK, Action.ARRIVE, State.BLOCKED),
        (State.PAUSED, Action.NEXT_STEP, State.WAITING),
        (State.INTERRUPTED, Action.RESUME, State.WAITING),
        (State.FAILED, Action.RERUN, State.WAITING),
        (State.BLOCKED, Action.UNBLOCK, State.WAITING),
    ],
)
def test_transitions(state, action, expected):
    assert transition(state, action) is expected


@pytest.mark.parametrize(
    "state, action",
    [
        (State.SUCCEEDED, Action.RERUN),
        (State.RUNNING, Action.PAUSE),
        (State.SKIPPED, Action.UNSKIP),
        (State.INTERRUPTED, Action.NEXT_STEP),
        (State.INTERRUPTED, Action.RESUME_BRANCH),
        (State.READY, Action.RUN),
    ],
)
def test_illegal_transitions_raise(state, action):
    with pytest.raises(TransitionError, match=f"a step in state '{state.value}' cannot"):
        transition(state, action)


def test_states_for_matches_autotrails_selections():
    assert states_for(Action.PAUSE) == {State.READY, State.WAITING}
    assert states_for(Action.RESUME) == {
        State.TO_PAUSE, State.PAUSED, State.PAUSED_ON_FAIL, State.INTERRUPTED}
    assert states_for(Action.SKIP) == {
        State.READY, State.WAITING, State.TO_PAUSE, State.PAUSED, State.PAUSED_ON_FAIL,
        State.INTERRUPTED}
    assert states_for(Action.INTERRUPT) == {State.RUNNING}
    assert states_for(Action.RERUN) == {State.FAILED, State.PAUSED_ON_FAIL, State.INTERRUPTED}


def test_done_ignored_finished():
    assert State.SUCCEEDED.done and State.SKIPPED.done and not State.FAILED.done
    assert State.FAILED.ignored and State.BLOCKED.ignored
    assert State.BLOCKED.finished and not State.PAUSED_ON_FAIL.finished
