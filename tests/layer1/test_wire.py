import json

import pytest

from trail.errors import ProtocolError
from trail.layer1.wire import MAX_REQUEST_BYTES, Call, Reply, Request, parse_request


def body(**fields):
    return json.dumps(fields).encode()


def test_a_request_gets_its_defaults():
    request = parse_request(body(call="pause", id=3))
    assert request == Request(Call.PAUSE, {"tags": {}, "dry_run": True}, 3)
    assert parse_request(body(call="start")).args["dry_run"] is False
    assert parse_request(body(call="next_step")).args == {"step_count": 1, "dry_run": True}


def test_round_trip():
    request = Request(Call.STATUS, {"fields": ["State"], "states": None, "tags": {"n": 1},
                                    "offset": 0, "limit": None}, 9)
    assert parse_request(request.to_json()) == request
    reply = Reply(9, False, error_type="ProtocolError", error_message="bad")
    assert Reply.from_json(reply.to_json()) == reply


@pytest.mark.parametrize(
    "data, message",
    [
        (b"garbage", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (body(call="explode"), "unknown call 'explode'"),
        (body(), "unknown call None"),
        (body(call="pause", args=[]), "'args' of pause must be an object"),
        (body(call="pause", args={"force": True}), "pause takes no argument 'force'"),
        (body(call="pause", args={"dry_run": "no"}), "'dry_run' must be true or false"),
        (body(call="pause", args={"tags": ["a"]}), "'tags' must be an object"),
        (body(call="pause", args={"tags": {"a": [1]}}), "tag 'a' must be a string"),
        (body(call="next_step", args={"step_count": -1}), "whole number"),
        (body(call="next_step", args={"step_count": True}), "whole number"),
        (body(call="status", args={"fields": ["Colour"]}), "'Colour' in 'fields'"),
        (body(call="status", args={"states": ["Sleeping"]}), "'Sleeping' in 'states'"),
        (body(call="status", args={"fields": [["State"]]}), "\\['State'\\] in 'fields'"),
        (body(call="send_message_to_steps"), "needs the argument 'message'"),
        (body(call="status", v=99), "speaks trail protocol 1, the request is 99"),
        (b" " * (MAX_REQUEST_BYTES + 1), "the limit is"),
    ],
)
def test_bad_requests_say_what_is_wrong(data, message):
    with pytest.raises(ProtocolError, match=message):
        parse_request(data)


def test_a_reply_from_another_protocol_version_is_refused():
    with pytest.raises(ProtocolError, match="speaks trail protocol 2"):
        Reply.from_json(b'{"v": 2, "id": 1, "ok": true, "result": null}')
