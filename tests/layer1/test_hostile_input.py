"""Input meant to kill the server: deep nesting, oversize frames. Each gets an error reply
(or, for a frame too big to read, a dropped connection) and the run goes on."""

from __future__ import annotations

import json

import pytest
import zmq

from tests.support import wait_states, wait_until
from trail import Step
from trail.errors import ProtocolError
from trail.layer1.wire import MAX_REQUEST_BYTES, parse_request


def noop(trail_env, context):
    return "done"


def ask(trail_env, context):
    return trail_env.input("go on?")


def raw_dealer(path):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{path}")
    return sock


def exchange(sock, body: bytes) -> dict:
    sock.send_multipart([b"", body])
    assert sock.poll(10000), f"no reply to {body[:40]!r}..."
    return json.loads(sock.recv_multipart()[-1])


@pytest.mark.parametrize("body", [
    b"[" * 2000,
    b'{"call": "info", "id": ' + b"[" * 5000 + b"}",
    b'{"call": "status", "args": {"tags": {"name": ' + b"[" * 3000 + b"}}}",
])
def test_deep_nesting_is_a_protocol_error(body):
    with pytest.raises(ProtocolError, match="nested"):
        parse_request(body)


def test_a_message_nested_deeper_than_trail_shows_is_refused_at_parse():
    body = (b'{"call": "send_message_to_steps", "args": {"dry_run": false, "message": '
            + b"[" * 900 + b"]" * 900 + b"}}")
    with pytest.raises(ProtocolError, match="nested"):
        parse_request(body)


def test_nesting_bombs_get_error_replies_and_the_run_goes_on(serve):
    client = serve([Step(noop, name="first"), Step(ask, name="second")])
    sock = raw_dealer(client.socket_file)
    client.start()
    wait_until(client.steps_waiting_for_user_input, "the question")
    bombs = [
        b"[" * 2000,
        b'{"id": ' + b"[" * 2000 + b"}",
        b'{"call": "pause", "args": {"tags": ' + b"{\"a\":" * 2000 + b"}}",
        b'{"call": "send_message_to_steps", "id": 9, "args": {"dry_run": false, "message": '
        + b"[" * 987 + b"]" * 987 + b"}}",
    ]
    for bomb in bombs:
        reply = exchange(sock, bomb)
        assert reply["ok"] is False and reply["error"]["type"] == "ProtocolError"
        assert "nested" in reply["error"]["message"]
    sock.close()
    # The refused reply was not kept: the question still waits, status reads fine.
    waiting = client.steps_waiting_for_user_input()
    assert [row["Name"] for row in waiting] == ["second"]
    row = client.status(fields=["Input messages"], name="second")[0]
    assert row["Input messages"] == []
    client.send_message_to_steps("yes", name="second", dry_run=False)
    wait_states(client, {"first": "Succeeded", "second": "Succeeded"})


def test_an_oversize_frame_is_dropped_before_it_is_buffered(serve):
    client = serve(Step(noop))
    sock = raw_dealer(client.socket_file)
    assert client.server._engine.sockets.api.getsockopt(zmq.MAXMSGSIZE) > 0
    sock.send_multipart([b"", b" " * (MAX_REQUEST_BYTES * 64)])
    # The server neither answers nor dies; a normal client keeps working.
    assert client.info()["steps"] == 1
    sock.close()
    sock = raw_dealer(client.socket_file)
    reply = exchange(sock, b'{"call": "info", "id": 3}')
    assert reply["ok"] and reply["id"] == 3
    sock.close()
    client.start()
    wait_states(client, {"noop": "Succeeded"})
