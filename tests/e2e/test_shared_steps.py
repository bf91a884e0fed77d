"""A Step is a description: one Step object may serve in several trails at once."""

from __future__ import annotations

from tests.support import wait_states
from trail import Step


def test_a_step_shared_by_two_trails_keeps_each_trails_numbering(serve):
    shared = Step(lambda e, c: "shared ran", name="shared", tier="db")
    first_only = Step(lambda e, c: 1, name="first_only")
    second_only = Step(lambda e, c: 2, name="second_only")
    first = serve(shared >> first_only, journal=False)  # shared is n=0 here
    second = serve(second_only >> shared, journal=False)  # and n=1 here
    assert first.list() == [{"name": "shared", "tier": "db", "n": 0},
                            {"name": "first_only", "n": 1}]
    assert second.list() == [{"name": "second_only", "n": 0},
                             {"name": "shared", "tier": "db", "n": 1}]
    assert shared.tags == {"name": "shared", "tier": "db"}  # untouched by either trail
    # Selecting by n picks each trail's own step.
    assert first.pause(dry_run=True, n=0) == [{"n": 0, "name": "shared"}]
    assert second.pause(dry_run=True, n=0) == [{"n": 0, "name": "second_only"}]
    for client in (first, second):
        client.start()
    wait_states(first, {"shared": "Succeeded", "first_only": "Succeeded"})
    wait_states(second, {"shared": "Succeeded", "second_only": "Succeeded"})
    assert first.status(fields=["Return value"], name="shared")[0]["Return value"] == \
        "shared ran"
