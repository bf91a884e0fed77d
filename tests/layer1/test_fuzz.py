"""Fuzz the API through the real socket: whatever arrives, a well-formed reply comes back
and the server goes on serving."""

from __future__ import annotations

import json

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trail import Step
from trail.layer1.wire import ARGUMENTS, Call

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Every call but the two that end the server; with dry_run forced, those too (below).
calls = st.sampled_from([c.value for c in Call if c not in (Call.SHUTDOWN, Call.STOP)])
MUTATING = {c.value for c, spec in ARGUMENTS.items() if "dry_run" in spec}
arg_names = st.sampled_from(["tags", "dry_run", "fields", "states", "step_count", "message",
                             "name", "n", ""])
requests = st.fixed_dictionaries(
    {"call": calls | st.text(max_size=20) | json_values},
    optional={"args": st.dictionaries(arg_names, json_values, max_size=4) | json_values,
              "id": json_values, "v": st.sampled_from([1, 2, None, "1"])},
)


@pytest.fixture(scope="module")
def fuzzed():
    from trail import TrailClient, TrailServer

    a, b = Step(lambda e, c: 1, name="a", tier="x"), Step(lambda e, c: 2, name="b")
    server = TrailServer(a >> b, journal=False)
    server.serve(threaded=True)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{server.socket_file}")
    yield sock, TrailClient(server.socket_file)
    sock.close(0)
    TrailClient(server.socket_file).shutdown(dry_run=False)
    assert server.join(20)


def ask(sock: zmq.Socket, frames: list[bytes]) -> dict:
    sock.send_multipart(frames)
    assert sock.poll(10_000), f"no reply to {frames!r}"
    reply = json.loads(sock.recv_multipart()[-1])
    assert reply["v"] == 1 and isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert reply["error"]["type"] and reply["error"]["message"]
    return reply


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests)
def test_structured_requests(fuzzed, request):
    sock, _ = fuzzed
    call = request.get("call")
    if isinstance(call, str) and call in MUTATING:  # fuzz freely, but change nothing
        args = request.get("args")
        request["args"] = {**(args if isinstance(args, dict) else {}), "dry_run": True}
    reply = ask(sock, [b"", json.dumps(request).encode()])
    if request.get("call") not in [c.value for c in Call]:
        assert not reply["ok"] and reply["error"]["type"] == "ProtocolError"


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_raw_bytes(fuzzed, data):
    sock, _ = fuzzed
    reply = ask(sock, [b"", data])
    try:
        body = json.loads(data)
    except ValueError:
        assert reply["error"]["type"] == "ProtocolError"
        return
    if not isinstance(body, dict):
        assert reply["error"]["message"].startswith("the request must be a JSON object")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.binary(max_size=40), min_size=1, max_size=5))
def test_odd_framing(fuzzed, frames):
    sock, _ = fuzzed
    ask(sock, frames)


def test_the_server_still_serves_after_the_fuzz(fuzzed):
    _, client = fuzzed
    assert {row["Name"]: row["State"] for row in client.status()} == {"a": "Ready",
                                                                        "b": "Ready"}
