"""Delivery off the manager's loop: one worker thread per destination, a few tries with a
pause between, every outcome journaled; a dead or hanging destination delays only itself."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from trail.layer2.notify.destinations import Destination, redact
from trail.layer2.notify.ledger import FAILED, SENT, Ledger
from trail.layer2.notify.messages import Notice

log = logging.getLogger(__name__)

TRIES = 3
PAUSES = (1.0, 4.0)  # seconds between tries


class Courier:
    """Hands notices to their destinations' workers; ``close`` lets them finish."""

    def __init__(self, ledger: Ledger, *, tries: int = TRIES,
                 pauses: Sequence[float] = PAUSES) -> None:
        self.ledger = ledger
        self.tries = tries
        self.pauses = tuple(pauses)
        self._queues: dict[int, queue.Queue[Notice | None]] = {}
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._give_up_at = 0.0

    def send(self, notice: Notice, destination: Destination) -> None:
        """Queue ``notice`` for ``destination`` unless the ledger says it went already."""
        if not self.ledger.claim(notice.key, notice.kind, notice.n, destination.where):
            log.debug("notice %s to %s: sent already", notice.key, destination.where)
            return
        self._queue(destination).put(notice)

    def _queue(self, destination: Destination) -> queue.Queue[Notice | None]:
        with self._lock:
            found = self._queues.get(id(destination))
            if found is None:
                found = self._queues[id(destination)] = queue.Queue()
                worker = threading.Thread(target=self._work, args=(destination, found),
                                          name=f"trail-notify {destination.where[:40]}",
                                          daemon=True)
                self._workers.append(worker)
                worker.start()
            return found

    def _work(self, destination: Destination, notices: queue.Queue[Notice | None]) -> None:
        while True:
            notice = notices.get()
            if notice is None or (self._closing.is_set()
                                  and time.monotonic() > self._give_up_at):
                return  # what is left stays 'sending' in the ledger, for a take-up
            self.deliver(notice, destination)

    def deliver(self, notice: Notice, destination: Destination) -> bool:
        """Send now, in this thread, with the tries; journal and log the outcome."""
        detail = ""
        for attempt in range(1, self.tries + 1):
            try:
                ok = bool(destination.service.notify(
                    body=notice.body, title=notice.title, body_format="text",
                    notify_type="failure" if notice.failure else "info"))
                detail = "" if ok else "the service refused it or did not answer"
            except Exception as exc:  # a plugin's bug must not end the worker
                ok, detail = False, redact(f"{type(exc).__name__}: {exc}")
            if ok:
                self.ledger.settle(notice.key, destination.where, SENT, attempt)
                log.info("notice %s sent to %s", notice.key, destination.where)
                return True
            if attempt < self.tries and not self._closing.is_set():
                time.sleep(self.pauses[min(attempt - 1, len(self.pauses) - 1)])
            elif self._closing.is_set():
                break
        log.warning("notice %s could not be sent to %s after %d tries: %s", notice.key,
                    destination.where, attempt, detail)
        self.ledger.settle(notice.key, destination.where, FAILED, attempt, detail)
        return False

    def close(self, timeout: float) -> None:
        """Let queued notices go out for up to ``timeout`` seconds (no more retry pauses),
        then stop; what is still queued stays 'sending' in the ledger and is sent by a
        server that takes the run up."""
        self._give_up_at = time.monotonic() + timeout
        self._closing.set()
        with self._lock:
            queues, workers = list(self._queues.values()), list(self._workers)
        for notices in queues:
            notices.put(None)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
