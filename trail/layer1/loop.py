"""The loop: the thin I/O shell around a Run. It polls the API socket, the event socket,
the executors' channels and the next timer, and on each wake-up serves requests, applies
results, fires timers, advances the run, journals, publishes, then replies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import zmq

from trail.errors import ProtocolError, ServerShuttingDownError
from trail.layer1 import events
from trail.layer1.api import handle
from trail.layer1.run import Run
from trail.layer1.wire import Call, Reply, error_reply, parse_request, request_id

log = logging.getLogger(__name__)

AFTER_STOPS = 0.1  # seconds the executors get to close once the stopped runs had their time


class Loop:
    """Serves one Run on its sockets (either may be None: a loop for tests polls executors
    and timers only) until the run is asked to shut down."""

    def __init__(self, run: Run, api_socket: zmq.Socket | None = None,
                 events_socket: zmq.Socket | None = None,
                 on_event: Callable[[events.Event], None] | None = None) -> None:
        self.run = run
        self.on_event = on_event  # also given each event as it is published (tests)
        self.api_socket = api_socket
        self.events_socket = events_socket
        self._poller = zmq.Poller()
        if api_socket is not None:
            self._poller.register(api_socket, zmq.POLLIN)
        if events_socket is not None and events_socket.type == zmq.XPUB:
            self._poller.register(events_socket, zmq.POLLIN)
        self._subscribers = 0
        self._replies: list[list[bytes]] = []  # sent once the wake-up's changes are committed
        run.executors.on_watch = lambda fd: self._poller.register(fd, zmq.POLLIN)
        run.executors.on_unwatch = self._poller.unregister
        for fd in run.executors.descriptors():
            self._poller.register(fd, zmq.POLLIN)

    def serve(self) -> None:
        """Serve until a shutdown call; then stop every running step."""
        log.info("trail loop serving %d steps", len(self.run.records))
        try:
            # This 'while' loop right here is the event loop: every state change of the run
            # happens inside it, on this thread.
            while not self.run.stopping:
                wait = 0 if self.run.busy else self.run.timers.wait_ms()
                log.debug("polling for %s", "ever" if wait is None else f"{wait} ms (timer)")
                self.turn(wait)
        finally:
            # Steps get their grace period to end; requests meanwhile are told why they
            # will not be served, rather than left to time out.
            with self._refusing():
                self.run.interrupt_running()
                # The stopped runs had their time: what is left of them goes at once.
                self.run.close(AFTER_STOPS if self._let_stopped_runs_end() else None)
            self.flush()
            self._refuse_waiting()

    def _let_stopped_runs_end(self) -> bool:
        """On the way out, give the runs just stopped their grace period (and a margin) to
        end and say how their work stopped (a command on a host: whether the host
        confirmed it), collecting what they report; requests wait (another thread refuses
        them meanwhile, so their socket leaves this poll)."""
        self.flush()
        if not self.run.steps.stops.stopping:
            return False
        for socket in (self.api_socket, self.events_socket):
            if socket is not None:
                with contextlib.suppress(KeyError):
                    self._poller.unregister(socket)
        deadline = time.monotonic() + self.run.steps.stops.deadline
        while self.run.steps.stops.stopping:
            left_ms = int((deadline - time.monotonic()) * 1000) + 1
            if left_ms <= 0:
                log.warning("shut down with %d stopped step runs still going",
                            len(self.run.steps.stops.stopping))
                return True
            due = self.run.timers.wait_ms()
            for fd, _ in self._poller.poll(left_ms if due is None else min(due, left_ms)):
                try:
                    self.run.executors.collect(fd)
                except Exception:
                    log.exception("could not handle what a step reported on fd %s", fd)
            self.run.timers.run_due()
            self.flush()
        return True

    def turn(self, wait_ms: int | None) -> None:
        """One wake-up: wait up to ``wait_ms`` (None: until something happens), handle
        everything that is ready, then journal, publish and reply."""
        ready = self._poller.poll(wait_ms)
        for item, _ in ready:
            if item is self.api_socket:
                self._serve_requests()
            elif item is self.events_socket:
                self._greet_subscribers()
        for item, _ in ready:
            if isinstance(item, int):
                try:
                    self.run.executors.collect(item)
                except Exception:  # a bug in handling one report must not end the run
                    log.exception("could not handle what a step reported on fd %s", item)
        self.run.timers.run_due()
        self.run.advance()
        self.flush()

    def _serve_requests(self) -> None:
        assert self.api_socket is not None
        while True:
            try:
                frames = self.api_socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # ROUTER frames: the peer's identity, maybe an empty delimiter, then the body.
            envelope, body = frames[:-1], frames[-1]
            self._replies.append([*envelope, self._answer(body)])

    def _answer(self, body: bytes) -> bytes:
        """The reply to one request; whatever goes wrong is an error reply, never a stop."""
        try:
            return handle(self.run, body).to_json()
        except Exception as exc:  # handle() catches what it can foresee; this is the rest
            log.exception("could not answer a request")
            return error_reply(request_id(body), exc).to_json()

    @contextlib.contextmanager
    def _refusing(self) -> Iterator[None]:
        """While the loop's thread is busy shutting down, another thread answers every
        request with an error saying so (the socket is that thread's alone meanwhile)."""
        if self.api_socket is None:
            yield
            return
        done = threading.Event()
        wake_read, wake_write = os.pipe()  # the end of the shutdown wakes the thread at once
        poller = zmq.Poller()
        poller.register(self.api_socket, zmq.POLLIN)
        poller.register(wake_read, zmq.POLLIN)

        def refuse() -> None:
            while not done.is_set():
                if self.api_socket is not None and poller.poll():
                    self._refuse_waiting()

        thread = threading.Thread(target=refuse, name="trail-shutdown-replies", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            os.write(wake_write, b"x")
            thread.join()
            os.close(wake_read)
            os.close(wake_write)

    def _refuse_waiting(self) -> None:
        """Answer every request waiting on the API socket: the server is shutting down."""
        if self.api_socket is None:
            return
        while True:
            try:
                frames = self.api_socket.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                return
            envelope, body = frames[:-1], frames[-1]
            try:
                request = parse_request(body)
            except ProtocolError as exc:
                reply = error_reply(request_id(body), exc)
            else:
                reply = (Reply(request.id, True, True) if request.call is Call.SHUTDOWN else
                         error_reply(request.id, ServerShuttingDownError(
                             f"the trail server is shutting down; {request.call} not served")))
            try:
                self.api_socket.send_multipart([*envelope, reply.to_json()], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("could not send a reply: %s", exc)

    def _greet_subscribers(self) -> None:
        assert self.events_socket is not None
        while True:
            try:
                note = self.events_socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if note[:1] == b"\x01":  # a subscription
                self._subscribers += 1
                self.run.outbox.listening = True
                self.run.publish(events.Hello())
            elif note[:1] == b"\x00":  # an unsubscription, or a subscriber gone
                self._subscribers -= 1
                self.run.outbox.listening = self._subscribers > 0

    def flush(self) -> None:
        """Commit this wake-up's changes, then let its events and replies go.

        Nothing is acknowledged or published before it is in the journal.
        """
        self.run.commit()
        for event in self.run.outbox.take():
            if self.on_event is not None:
                self.on_event(event)
            if self.events_socket is None:
                continue
            try:
                self.events_socket.send(event.to_json(), zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("could not publish an event: %s", exc)
        for frames in self._replies:
            assert self.api_socket is not None
            try:
                self.api_socket.send_multipart(frames, zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # the client went away; the run goes on
                log.warning("could not send a reply: %s", exc)
        self._replies.clear()
