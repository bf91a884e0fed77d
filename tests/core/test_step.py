import functools

import pytest

from trail.core import Step


def deploy(trail_env, context):
    return "ok"


def test_defaults_follow_autotrail():
    step = Step(deploy, tier="web")
    assert step.tags == {"tier": "web", "name": "deploy"}
    assert step.pause_on_fail is True and step.skip_progeny_on_failure is False
    assert step.timeout is None
    assert step.pre_processor("env", "ctx") == (("env", "ctx"), {})
    assert step.post_processor("env", "ctx", 5) == 5
    error = ValueError("x")
    assert step.failure_handler("env", "ctx", error) is error


def test_names_of_partials_and_lambdas():
    assert Step(functools.partial(deploy, 1)).name == "deploy"
    assert Step(lambda e, c: 1).name == "<lambda>"
    assert Step(deploy, name="custom").name == "custom"


def test_bad_options_are_refused():
    with pytest.raises(TypeError, match="callable"):
        Step("deploy")
    with pytest.raises(ValueError, match="timeout"):
        Step(deploy, timeout=0)


def test_options_left_at_their_defaults_are_not_tags():
    def act(trail_env, context):
        return None

    assert Step(act).tags == {"name": "act"}
    step = Step(act, retries="2", idempotent="yes", retry_on=lambda error: True)
    assert step.tags == {"name": "act", "retries": "2", "idempotent": "yes"}
    assert step.retries == 2 and step.idempotent is True


def test_the_executor_names_a_step_may_give_are_layer1s():
    from trail.core.step import EXECUTOR_NAMES
    from trail.layer1.executors import EXECUTORS

    assert set(EXECUTOR_NAMES) == set(EXECUTORS)
