"""The server side of the wire: garbage, vanishing clients, permissions, stale sockets."""

import json
import os
import socket
import stat

import pytest
import zmq

from tests.support import wait_states
from trail import SocketInUseError, Step, TrailClient, TrailConnectionError, TrailServer
from trail.errors import TrailError


def noop(trail_env, context):
    return "done"


def raw_dealer(path):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{path}")
    return sock


def test_garbage_gets_an_error_reply_and_the_server_keeps_serving(serve):
    client = serve(Step(noop))
    sock = raw_dealer(client.socket_file)
    for garbage in [b"garbage", b"\x00\xff", b"{}", b'{"call": 5}', b"[]", b"null"]:
        sock.send_multipart([b"", garbage])
        assert sock.poll(10000), f"no reply to {garbage!r}"
        reply = json.loads(sock.recv_multipart()[-1])
        assert reply["ok"] is False and reply["error"]["type"] == "ProtocolError"
        assert reply["error"]["message"]
    # Without the REQ-style empty delimiter, and with extra frames: still answered.
    sock.send_multipart([b"x", b"y", json.dumps({"call": "info", "id": "q"}).encode()])
    assert sock.poll(10000)
    assert json.loads(sock.recv_multipart()[-1])["id"] == "q"
    sock.close()
    # Bytes that are not even ZeroMQ on the Unix socket.
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(client.socket_file)
    raw.sendall(b"GET / HTTP/1.0\r\n\r\n" * 100)
    raw.close()
    client.start()
    wait_states(client, {"noop": "Succeeded"})


def test_a_client_that_vanishes_mid_request_does_not_hurt_the_run(serve):
    client = serve(Step(noop))
    for _ in range(20):
        sock = raw_dealer(client.socket_file)
        sock.send_multipart([b"", json.dumps({"call": "status", "id": 1}).encode()])
        sock.close(0)
    client.start()
    wait_states(client, {"noop": "Succeeded"})


def test_socket_permissions(serve):
    client = serve(Step(noop))
    path = client.socket_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert os.stat(path).st_uid == os.getuid()


def test_a_stale_socket_is_replaced_and_a_live_one_never_taken(tmp_path):
    path = str(tmp_path / "t.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays: a stale socket, as a killed server leaves
    with pytest.raises(TrailConnectionError, match="nobody listens|no reply"):
        TrailClient(path, timeout=0.3).status()
    server = TrailServer(Step(noop), socket_file=path)
    server.serve(threaded=True)
    try:
        with pytest.raises(SocketInUseError, match=path):
            TrailServer(Step(noop), socket_file=path)
        assert TrailClient(path).info()["steps"] == 1  # the live one still serves
    finally:
        TrailClient(path).shutdown(dry_run=False)
        assert server.join(10)


def test_a_non_socket_file_is_never_replaced(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    with pytest.raises(TrailError, match="not a socket"):
        TrailServer(Step(noop), socket_file=str(path))
    assert path.read_text() == "keep me"


def test_a_client_never_hangs_on_a_silent_server(tmp_path):
    path = str(tmp_path / "silent.sock")
    mute = zmq.Context.instance().socket(zmq.ROUTER)
    mute.bind(f"ipc://{path}")
    try:
        with pytest.raises(TrailConnectionError, match=f"{path}.*no reply within 0.3 s"):
            TrailClient(path, timeout=0.3).status()
    finally:
        mute.close(0)
    with pytest.raises(TrailConnectionError, match="does not exist"):
        TrailClient(str(tmp_path / "missing.sock")).status()
