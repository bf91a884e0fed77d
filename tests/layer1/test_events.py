"""Typed events read the way dict events were: code written for dicts keeps working."""

from __future__ import annotations

import pytest

from trail.layer1.events import Event, Hello, Output, StateChanged


def test_an_event_answers_dict_style_reads():
    event = Event.from_json(b'{"kind":"state","seq":3,"time":1.5,"n":2,"name":"deploy",'
                            b'"state":"Succeeded","previous":"Running","cause":"returned",'
                            b'"return_value":null}')
    assert isinstance(event, StateChanged)
    assert (event["kind"], event["n"], event["state"], event["seq"]) == (
        "state", 2, "Succeeded", 3)
    assert "return_value" in event and event["return_value"] is None
    assert event.get("return_value", "absent") is None
    assert "message" not in event and event.get("message") is None
    with pytest.raises(KeyError):
        event["message"]


def test_a_state_event_without_a_value_has_no_return_value_key():
    event = StateChanged(n=1, name="a", state="Running", previous="Waiting")
    assert "return_value" not in event
    assert event.get("return_value", "absent") == "absent"
    with pytest.raises(KeyError):
        event["return_value"]
    assert event.to_dict().keys() == {key for key in event.to_dict() if key in event}


def test_a_greeting_has_no_step():
    assert Hello().get("n") is None and "n" not in Hello() and Hello()["kind"] == "hello"
    assert Output(n=0, name="x", message="hi")["message"] == "hi"
    assert [] not in Output()  # an unhashable key is simply absent


@pytest.mark.parametrize("event", [
    StateChanged(seq=7, time=1700000000.123456, n=3, name="déploy \"x\"\n", state="Succeeded",
                 previous="Running", cause="returned", return_value={"a": [1, 2.5, None]}),
    StateChanged(seq=1, time=2.0, n=0, name="a", state="Running", previous="Waiting",
                 cause="started"),
    StateChanged(seq=2, time=3.5, n=1, name="b", state="Failed", previous="Running",
                 cause="raised: ☃", return_value=ValueError("no ☃")),
    StateChanged(n=2, name=5, state="Ready"),  # type: ignore[arg-type]  # as from_json may
    StateChanged(seq=3, time=float("nan"), n=1, name="b"),
])
def test_a_state_event_travels_as_every_event_does(event):
    """A state event (three per step) is written by a quicker path: the same bytes."""
    try:
        generic = Event.to_json(event)
    except ValueError:  # a time JSON cannot hold is refused either way
        with pytest.raises(ValueError):
            event.to_json()
        return
    assert event.to_json() == generic
    assert Event.from_json(event.to_json()) == Event.from_json(generic)
