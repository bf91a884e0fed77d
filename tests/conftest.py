from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from trail import TrailClient, TrailServer

_PRIVATE = tempfile.TemporaryDirectory(prefix="trail-t-", ignore_cleanup_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    """Journals and sockets go to directories of this test process, not the user's home or
    runtime directory. Set before the test modules are imported (some copy os.environ for
    their subprocesses). Each pytest-xdist worker is a process of its own, so `trail ls` in
    one never sees (or prunes) another's trails. The path is short: a socket's path must fit
    in 107 bytes."""
    for key, name in (("XDG_STATE_HOME", "state"), ("XDG_RUNTIME_DIR", "run")):
        path = os.path.join(_PRIVATE.name, name)
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.environ[key] = path


def pytest_unconfigure(config: pytest.Config) -> None:
    _PRIVATE.cleanup()


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(definition, **options) -> a TrailClient of a server running in the background."""
    servers: list[TrailServer] = []

    def start(definition: Any, **options: Any) -> TrailClient:
        server = TrailServer(definition, **options)
        server.serve(threaded=True)
        servers.append(server)
        client = TrailClient(server.socket_file, timeout=10)
        client.server = server  # type: ignore[attr-defined]
        return client

    yield start
    for server in servers:
        if server.serving:
            TrailClient(server.socket_file, timeout=10).shutdown(dry_run=False)
        assert server.join(30), "the server did not shut down"


@pytest.fixture(params=["process", "thread", "dask"])
def executor(request: pytest.FixtureRequest) -> str:
    """Every contract test runs against every executor (dask: on a LocalCluster, whose
    address reaches the trail as $TRAIL_DASK_ADDRESS)."""
    if request.param == "dask":
        request.getfixturevalue("dask_address")
    return request.param


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """A LocalCluster (scheduler and 2 workers as processes) for the session's dask steps."""
    from tests.layer1.test_dask_executor import local_cluster

    with local_cluster() as cluster:
        old = os.environ.get("TRAIL_DASK_ADDRESS")
        os.environ["TRAIL_DASK_ADDRESS"] = cluster.scheduler_address
        yield cluster.scheduler_address
        if old is None:
            del os.environ["TRAIL_DASK_ADDRESS"]
        else:
            os.environ["TRAIL_DASK_ADDRESS"] = old
