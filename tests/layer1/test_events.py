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
