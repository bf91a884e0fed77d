"""StatusMirror: events fed by hand (no server), then a real run against a fresh status()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import wait_until
from trail import Step
from trail.layer1.events import (
    Hello,
    Input,
    Output,
    PauseOnFailChanged,
    Prompt,
    ShuttingDown,
    StateChanged,
)
from trail.layer1.wire import StatusField as F
from trail.layer2.mirror import PAUSE_ON_FAIL, StatusMirror

ALL = [F.STATE, F.RETURN_VALUE, F.OUTPUT_MESSAGES, F.PROMPT_MESSAGES, F.INPUT_MESSAGES,
       F.UNREPLIED_PROMPT_MESSAGE, F.STARTED_AT, F.FINISHED_AT]


def row(n: int, name: str, state: str = "Ready", **fields: Any) -> dict[str, Any]:
    """A status row of every mirrored field, as the server would give a step not yet run."""
    base: dict[str, Any] = {
        F.N: n, F.NAME: name, F.STATE: state, F.RETURN_VALUE: None, F.OUTPUT_MESSAGES: [],
        F.PROMPT_MESSAGES: [], F.INPUT_MESSAGES: [], F.UNREPLIED_PROMPT_MESSAGE: None,
        F.STARTED_AT: None, F.FINISHED_AT: None}
    base.update(fields)
    return base


def state(n: int, new: str, previous: str, time: float, **extra: Any) -> StateChanged:
    return StateChanged(seq=0, time=time, n=n, name=f"s{n}", state=new, previous=previous,
                        **extra)


def mirror_of(*rows: dict[str, Any], fields: list[str] = ALL) -> StatusMirror:
    mirror = StatusMirror(fields)
    mirror.reset(rows)
    return mirror


def test_a_step_that_runs_again_starts_a_new_conversation():
    mirror = mirror_of(row(0, "s0", "Paused due to failure", **{
        F.RETURN_VALUE: "boom", F.PROMPT_MESSAGES: ["sure?"], F.INPUT_MESSAGES: ["yes"],
        F.OUTPUT_MESSAGES: ["working"], F.STARTED_AT: 1.0, F.FINISHED_AT: 2.0}))
    mirror.apply(state(0, "Waiting", "Paused due to failure", 3.0))
    assert mirror.rows[0][F.FINISHED_AT] == 2.0  # not a run that ended: untouched
    changed = mirror.apply(state(0, "Running", "Waiting", 4.0))
    assert changed == row(0, "s0", "Running", **{
        F.OUTPUT_MESSAGES: ["working"], F.STARTED_AT: 4.0, F.FINISHED_AT: None})


def test_a_question_waits_until_answered_and_only_while_running():
    mirror = mirror_of(row(0, "s0"), row(1, "s1"))
    mirror.apply(state(0, "Running", "Waiting", 1.0))
    mirror.apply(Prompt(n=0, name="s0", message="proceed?"))
    assert mirror.rows[0][F.UNREPLIED_PROMPT_MESSAGE] == "proceed?"
    assert mirror.waiting() == [mirror.rows[0]]
    mirror.apply(Input(n=0, name="s0", message=True, cause="api:send_message_to_steps"))
    assert mirror.rows[0][F.UNREPLIED_PROMPT_MESSAGE] is None
    assert mirror.rows[0][F.PROMPT_MESSAGES] == ["proceed?"]
    assert mirror.rows[0][F.INPUT_MESSAGES] == [True]
    assert mirror.waiting() == []
    mirror.apply(Prompt(n=0, name="s0", message="again?"))
    assert mirror.question(0) == "again?"
    mirror.apply(state(0, "Interrupted", "Running", 2.0))
    assert mirror.rows[0][F.UNREPLIED_PROMPT_MESSAGE] is None  # an ended step asks nothing
    assert mirror.waiting() == []


def test_an_answer_sent_before_the_question_answers_it():
    mirror = mirror_of(row(0, "s0"))
    mirror.apply(state(0, "Running", "Waiting", 1.0))
    mirror.apply(Input(n=0, name="s0", message="early"))
    mirror.apply(Prompt(n=0, name="s0", message="name?"))
    assert mirror.question(0) is None  # as the server counts: asked 1, told 1


def test_a_run_that_ends_sets_finished_at_and_its_value():
    mirror = mirror_of(row(0, "s0"), row(1, "s1"))
    mirror.apply(state(0, "Running", "Waiting", 1.0))
    mirror.apply(Output(n=0, name="s0", message="step 1 of 2"))
    mirror.apply(state(0, "Paused due to failure", "Running", 5.0, return_value="ZeroDivision"))
    assert mirror.rows[0][F.FINISHED_AT] == 5.0
    assert mirror.rows[0][F.RETURN_VALUE] == "ZeroDivision"
    assert mirror.last(0) == "ZeroDivision"  # why it failed, where the view looks
    mirror.apply(state(1, "Running", "Waiting", 6.0))
    mirror.apply(Output(n=1, name="s1", message=3))
    mirror.apply(state(1, "Succeeded", "Running", 7.0, return_value=42))
    assert mirror.rows[1][F.RETURN_VALUE] == 42
    assert mirror.rows[1][F.OUTPUT_MESSAGES] == [3]
    assert mirror.last(1) == "3"  # a success shows its output, not its value


def test_a_retry_ends_the_attempt_and_the_next_one_starts_afresh():
    mirror = mirror_of(row(0, "s0"))
    mirror.apply(state(0, "Running", "Waiting", 1.0))
    mirror.apply(Output(n=0, name="s0", message="[trail] attempt 1 of 3 failed"))
    mirror.apply(state(0, "Waiting", "Running", 2.0))
    assert (mirror.rows[0][F.STARTED_AT], mirror.rows[0][F.FINISHED_AT]) == (1.0, 2.0)
    mirror.apply(state(0, "Running", "Waiting", 3.0))
    assert (mirror.rows[0][F.STARTED_AT], mirror.rows[0][F.FINISHED_AT]) == (3.0, None)
    assert mirror.rows[0][F.OUTPUT_MESSAGES] == ["[trail] attempt 1 of 3 failed"]


def test_a_step_skipped_before_it_ran_has_no_times():
    mirror = mirror_of(row(0, "s0"))
    mirror.apply(state(0, "Skipped", "Ready", 1.0))
    assert mirror.rows[0][F.STATE] == "Skipped"
    assert (mirror.rows[0][F.STARTED_AT], mirror.rows[0][F.FINISHED_AT]) == (None, None)


def test_only_the_asked_fields_are_kept_and_state_always():
    mirror = StatusMirror([F.RETURN_VALUE])
    assert mirror.fields == (F.STATE, F.RETURN_VALUE)
    mirror.reset([row(0, "s0", **{F.OUTPUT_MESSAGES: ["a", "b"], F.TAGS: {"n": 0}})])
    assert mirror.rows[0] == {F.N: 0, F.NAME: "s0", F.STATE: "Ready", F.RETURN_VALUE: None}
    assert mirror.last(0) == "b"
    mirror.apply(state(0, "Running", "Waiting", 1.0))
    mirror.apply(Output(n=0, name="s0", message="c"))
    mirror.apply(Prompt(n=0, name="s0", message="ok?"))
    assert mirror.rows[0] == {F.N: 0, F.NAME: "s0", F.STATE: "Running", F.RETURN_VALUE: None}
    assert mirror.last(0) == "c"
    assert mirror.waiting() == [mirror.rows[0]]  # counted even when the rows lack the field


def test_pause_on_fail_is_kept_where_a_row_has_it():
    mirror = mirror_of(row(0, "s0", **{PAUSE_ON_FAIL: True}), row(1, "s1"),
                       fields=[*ALL, PAUSE_ON_FAIL])
    mirror.apply(PauseOnFailChanged(n=0, name="s0", pause_on_fail=False))
    mirror.apply(PauseOnFailChanged(n=1, name="s1", pause_on_fail=False))
    assert mirror.rows[0][PAUSE_ON_FAIL] is False
    assert PAUSE_ON_FAIL not in mirror.rows[1]


def test_events_about_no_mirrored_step_change_nothing():
    mirror = mirror_of(row(0, "s0"))
    before = {n: dict(r) for n, r in mirror.rows.items()}
    assert mirror.apply(Hello()) is None
    assert mirror.apply(ShuttingDown(cause="api:shutdown")) is None
    assert mirror.apply(state(7, "Running", "Waiting", 1.0)) is None
    assert mirror.rows == before


def test_counts_follow_the_rows():
    mirror = mirror_of(row(0, "s0", "Succeeded"), row(1, "s1"), row(2, "s2", "Succeeded"))
    assert mirror.counts() == {"Succeeded": 2, "Ready": 1}
    mirror.apply(state(1, "Waiting", "Ready", 1.0))
    assert mirror.counts() == {"Succeeded": 2, "Waiting": 1}


# --- against a real server --------------------------------------------------------------


def flaky(marker: Path) -> Any:
    def action(trail_env: Any, context: Any) -> str:
        trail_env.output("trying")
        if not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError("first attempt fails")
        return "second attempt"
    return action


def asks(trail_env: Any, context: Any) -> str:
    trail_env.output("about to ask")
    return f"told {trail_env.input('proceed?')}"


def fixed_by(flag: Path) -> Any:
    def action(trail_env: Any, context: Any) -> str:
        if not flag.exists():
            raise RuntimeError("not fixed yet")
        trail_env.output("fixed")
        return "ok"
    return action


def broken(trail_env: Any, context: Any) -> None:
    raise ValueError("always")


def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with their times as 'set or not': the server stamps a start a moment before
    the event that tells of it."""
    return [{key: (value is not None if key in (F.STARTED_AT, F.FINISHED_AT) else value)
             for key, value in r.items()} for r in rows]


def test_a_mirror_fed_by_a_run_equals_a_fresh_status(serve, tmp_path):
    retried = Step(flaky(tmp_path / "retried"), name="retried", retries=2, retry_delay=0.05)
    question = Step(asks, name="question")
    rerun = Step(fixed_by(tmp_path / "fixed"), name="rerun")  # pauses on failure
    failed = Step(broken, name="failed", pause_on_fail=False)
    last = Step(lambda e, c: "end", name="last")
    client = serve([(retried, question), (question, rerun), (rerun, last), (retried, failed)])
    fields = [*ALL, F.TAGS]
    mirror = StatusMirror(fields)
    answered = fixed = False
    with client.subscribe() as stream:
        mirror.load(client)
        client.start()

        def drain(timeout: float) -> None:
            event = stream.next(timeout)
            while event is not None:
                mirror.apply(event)
                event = stream.next(0)

        def progress() -> bool:
            nonlocal answered, fixed
            drain(0.2)
            if not answered and [r["Name"] for r in mirror.waiting()] == ["question"]:
                client.send_message_to_steps("yes", dry_run=False, name="question")
                answered = True
            if not fixed and mirror.counts().get("Paused due to failure"):
                (tmp_path / "fixed").write_text("")
                client.rerun(dry_run=False, name="rerun")
                fixed = True
            return fixed and client.info()["finished"]

        wait_until(progress, "the trail to finish")

        def caught_up() -> bool:
            drain(0.1)
            return comparable(list(mirror.rows.values())) == comparable(
                client.status(fields=fields))

        wait_until(caught_up, "the mirror to catch up with status()")
    rows = {r["Name"]: r for r in mirror.rows.values()}
    assert {name: r[F.STATE] for name, r in rows.items()} == {
        "retried": "Succeeded", "question": "Succeeded", "rerun": "Succeeded",
        "failed": "Failed", "last": "Succeeded"}
    said = rows["retried"][F.OUTPUT_MESSAGES]
    assert said[0] == "trying" and said[2] == "trying"
    assert said[1].startswith("[trail] attempt 1 of 3 failed")
    assert rows["question"][F.PROMPT_MESSAGES] == ["proceed?"]
    assert rows["question"][F.INPUT_MESSAGES] == ["yes"]
    assert rows["question"][F.RETURN_VALUE] == "told yes"
    assert rows["rerun"][F.RETURN_VALUE] == "ok"
    assert "always" in str(rows["failed"][F.RETURN_VALUE])
    for r in rows.values():
        assert r[F.STARTED_AT] <= r[F.FINISHED_AT]
