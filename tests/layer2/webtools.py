"""A real `trail web` process for tests, and plain-HTTP helpers to talk to it (SSE too)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support import DEADLINE, wait_until

ROOT = Path(__file__).parents[2]


class WebProcess:
    """`python -m trail web --port 0` on loopback, finding trails in ``runtime``/trail."""

    def __init__(self, runtime: Path, *args: str, **env: str) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_RUNTIME_DIR": str(runtime),
                    **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trail", "web", "--port", "0", *args], env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        assert self.process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.process.stdout.readline()),  # type: ignore[union-attr]
                         daemon=True).start()
        try:
            self.first_line = lines.get(timeout=DEADLINE)
        except queue.Empty:
            self.stop()
            raise AssertionError("trail web printed no URL") from None
        found = re.search(r"(http://\S+)/\?token=(\S+)", self.first_line)
        assert found, f"no URL with a token in {self.first_line!r}: {self.stderr()}"
        self.base, self.token = found.group(1), found.group(2)
        self.url = f"{self.base}/?token={self.token}"
        parts = urlsplit(self.base)
        self.host, self.port = parts.hostname or "", parts.port or 0
        wait_until(lambda: self.get("/api/trails")[0] == 200, "trail web to answer")

    def connection(self, timeout: float = DEADLINE) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        conn = self.connection()
        try:
            data = None if body is None else json.dumps(body)
            conn.request(method, path, body=data, headers={
                **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
            response = conn.getresponse()
            raw = response.read().decode()
            kind = response.getheader("content-type") or ""
            return response.status, json.loads(raw) if "json" in kind else raw
        finally:
            conn.close()

    def get(self, path: str, token: bool = True) -> tuple[int, Any]:
        return self.request("GET", path, headers={"X-Trail-Token": self.token} if token else {})

    def post(self, path: str, body: Any, **headers: str) -> tuple[int, Any]:
        return self.request("POST", path, body, {"X-Trail-Token": self.token, **headers})

    def steer(self, key: str, call: str, dry_run: bool, **body: Any) -> Any:
        status, data = self.post(f"/api/runs/{key}/calls/{call}", {**body, "dry_run": dry_run})
        assert status == 200, data
        assert data["dry_run"] is dry_run
        return data["result"]

    def key_of(self, name: str, live: bool = True) -> str:
        def found() -> str | None:
            trails = self.get("/api/trails")[1]["trails"]
            return next((t["key"] for t in trails if t["name"] == name and t["live"] == live),
                        None)

        return wait_until(found, f"trail {name!r} listed (live={live})")

    def events(self, run: str | None = None) -> EventReader:
        return EventReader(self, run)

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> tuple[str, str]:
        """Stop it (SIGTERM, as ^C would) and return everything it printed."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            out, err = self.process.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return self.first_line + out, err


class EventReader:
    """A server-sent event stream read in a thread; ``wait_for`` finds a message."""

    def __init__(self, web: WebProcess, run: str | None) -> None:
        self.conn = web.connection(timeout=60)
        path = "/api/events" + (f"?run={run}" if run is not None else "")
        self.conn.request("GET", path, headers={"X-Trail-Token": web.token,
                                                "Accept": "text/event-stream"})
        self.sock = self.conn.sock  # kept: close() must wake the reading thread
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.read()
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        # AttributeError: the connection was closed under the reading thread.
        with contextlib.suppress(OSError, ValueError, AttributeError,
                                 http.client.HTTPException):
            while True:
                line = self.response.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                if text.startswith("data:"):
                    with self.lock:
                        self.messages.append(json.loads(text[5:].strip()))

    def wait_for(self, what: str, predicate: Any, timeout: float = DEADLINE) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            with self.lock:
                return next((m for m in self.messages if predicate(m)), None)

        try:
            return wait_until(found, what, timeout)
        except AssertionError as exc:
            with self.lock:
                kinds = [m.get("type") for m in self.messages][-20:]
            raise AssertionError(f"{exc}; last messages: {kinds}") from None

    def close(self) -> None:
        # Shut the socket down first: the reading thread sits in recv() holding the
        # response's lock, and a plain close would wait for the next message or ping.
        with contextlib.suppress(OSError):
            if self.sock is not None:
                self.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def row_state(name: str, state: str) -> Any:
    """A predicate: an event message whose row is step ``name`` in ``state``."""
    return lambda m: m.get("type") == "event" and m.get("row", {}).get("Name") == name \
        and m["row"]["State"] == state
