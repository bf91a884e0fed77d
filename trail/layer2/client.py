"""TrailClient: every API call as a method, with AutoTrail's names, arguments and results."""

from __future__ import annotations

import builtins
import itertools
import os
import threading
from typing import Any

import zmq

from trail.errors import TrailClientError, TrailConnectionError
from trail.layer1.sockets import events_file, is_live
from trail.layer1.wire import Call, Reply, Request
from trail.layer2.stream import EventStream

Steps = list[dict[str, Any]]


class TrailClient:
    """Steers the trail served at ``socket_file``.

    Each call waits up to ``timeout`` seconds for the server and raises TrailConnectionError,
    naming the socket, when none answers (AutoTrail returned None); a call the server
    refuses raises TrailClientError with the server's message. Mutating calls default to
    ``dry_run=True``: they say which steps would change and change nothing. Safe to share
    between threads.
    """

    def __init__(self, socket_file: str, timeout: float = 5.0) -> None:
        self.socket_file = os.path.abspath(socket_file)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._socket: zmq.Socket | None = None
        self._pid = os.getpid()

    # --- transport -----------------------------------------------------------------------

    def _connect(self) -> zmq.Socket:
        # Checked every call (a stat costs microseconds): a server that shut down is
        # reported at once, not after the timeout.
        if not os.path.exists(self.socket_file):
            self._drop()
            raise TrailConnectionError(self.socket_file, "the socket file does not exist")
        if self._socket is not None and self._pid == os.getpid():
            return self._socket
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"ipc://{self.socket_file}")
        self._socket, self._pid = sock, os.getpid()
        return sock

    def _drop(self) -> None:
        """Forget the socket after a timeout, so a late reply can't answer the next call."""
        if self._socket is not None and self._pid == os.getpid():
            self._socket.close(0)
        self._socket = None

    def call(self, call: Call | str, **args: Any) -> Any:
        """Send one request and return its result (the methods below all come here)."""
        request = Request(Call(call), args, next(self._ids))
        with self._lock:
            sock = self._connect()
            sock.send_multipart([b"", request.to_json()])
            deadline_ms = int(self.timeout * 1000)
            while True:
                if not sock.poll(deadline_ms, zmq.POLLIN):
                    self._drop()
                    raise TrailConnectionError(self.socket_file, self._silence_reason())
                frames = sock.recv_multipart()
                reply = Reply.from_json(frames[-1])
                if reply.id == request.id:
                    break  # anything else is a late answer to an earlier, timed-out call
        if not reply.ok:
            raise TrailClientError(reply.error_message or "the server refused the call",
                                   reply.error_type or "TrailError")
        return reply.result

    def _silence_reason(self) -> str:
        if not os.path.exists(self.socket_file):
            return "the socket file is gone (the server has shut down)"
        try:
            live = is_live(self.socket_file)
        except OSError as exc:
            return f"cannot connect: {exc}"
        if not live:
            return "nobody listens on it (the server has exited; the file is stale)"
        return f"no reply within {self.timeout:g} s"

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> TrailClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the API -------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the server is: protocol, pid, sockets, step count, counts per state."""
        return self.call(Call.INFO)

    def graph(self) -> dict[str, Any]:
        """The trail's shape: ``steps`` (tags, by n) and ``edges`` ([parent n, child n])."""
        return self.call(Call.GRAPH)

    def start(self, dry_run: bool = False, **tags: Any) -> Steps:
        """Start the trail: Ready steps become Waiting. (AutoTrail's start takes no dry_run.)"""
        return self.call(Call.START, dry_run=dry_run, tags=tags)

    def stop(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Interrupt the running steps and block the rest. Returns the interrupted steps."""
        return self.call(Call.STOP, dry_run=dry_run, tags=tags)

    def shutdown(self, dry_run: bool = True) -> bool:
        """Shut the server down (running steps are interrupted). True if it will."""
        return self.call(Call.SHUTDOWN, dry_run=dry_run)

    def list(self, **tags: Any) -> Steps:
        """The tags of the matching steps, in topological order."""
        return self.call(Call.LIST, tags=tags)

    def status(
        self, fields: builtins.list[str] | None = None,
        states: builtins.list[str] | None = None, **tags: Any
    ) -> Steps:
        """A row per matching step: n and Name, then ``fields`` (StatusField values).

        ``fields`` defaults to State, Waiting for response, Output messages, Return value;
        ``states`` keeps only the steps in those states.
        """
        return self.call(Call.STATUS, fields=fields, states=states, tags=tags)

    def steps_waiting_for_user_input(self, **tags: Any) -> Steps:
        """The steps with an unanswered prompt, and the prompt."""
        return self.call(Call.STEPS_WAITING_FOR_USER_INPUT, tags=tags)

    def send_message_to_steps(self, message: Any, dry_run: bool = True, **tags: Any) -> Steps:
        """Send ``message`` (any JSON value) to the running steps with the given tags."""
        return self.call(Call.SEND_MESSAGE_TO_STEPS, message=message, dry_run=dry_run, tags=tags)

    def next_step(self, step_count: int = 1, dry_run: bool = True) -> Steps:
        """Resume the first ``step_count`` paused steps in topological order."""
        return self.call(Call.NEXT_STEP, step_count=step_count, dry_run=dry_run)

    def _tagged(self, call: Call, dry_run: bool, tags: dict[str, Any]) -> Steps:
        return self.call(call, dry_run=dry_run, tags=tags)

    def pause(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Hold steps before they run (Ready/Waiting -> To Pause -> Paused)."""
        return self._tagged(Call.PAUSE, dry_run, tags)

    def pause_branch(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Pause the tagged steps and their strict progeny."""
        return self._tagged(Call.PAUSE_BRANCH, dry_run, tags)

    def interrupt(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Stop running steps now; they become Interrupted (resume runs them again)."""
        return self._tagged(Call.INTERRUPT, dry_run, tags)

    def resume(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Let paused, failed-and-paused or interrupted steps run (again)."""
        return self._tagged(Call.RESUME, dry_run, tags)

    def resume_branch(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Resume the tagged steps and their strict progeny."""
        return self._tagged(Call.RESUME_BRANCH, dry_run, tags)

    def skip(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Mark steps To Skip: they count as done without running."""
        return self._tagged(Call.SKIP, dry_run, tags)

    def unskip(self, dry_run: bool = True, **tags: Any) -> Steps:
        return self._tagged(Call.UNSKIP, dry_run, tags)

    def block(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Mark steps To Block: they never run, nor does anything below them."""
        return self._tagged(Call.BLOCK, dry_run, tags)

    def unblock(self, dry_run: bool = True, **tags: Any) -> Steps:
        return self._tagged(Call.UNBLOCK, dry_run, tags)

    def rerun(self, dry_run: bool = True, **tags: Any) -> Steps:
        """Run failed, failed-and-paused or interrupted steps again."""
        return self._tagged(Call.RERUN, dry_run, tags)

    def set_pause_on_fail(self, dry_run: bool = True, **tags: Any) -> Steps:
        return self._tagged(Call.SET_PAUSE_ON_FAIL, dry_run, tags)

    def unset_pause_on_fail(self, dry_run: bool = True, **tags: Any) -> Steps:
        return self._tagged(Call.UNSET_PAUSE_ON_FAIL, dry_run, tags)

    # --- events --------------------------------------------------------------------------

    def subscribe(self) -> EventStream:
        """Subscribe to the server's events; returns once the subscription is in place.

        Everything that happens after this returns is in the stream: subscribe, then read
        ``status()`` for the state before, then act.
        """
        return EventStream(events_file(self.socket_file), self.timeout)
