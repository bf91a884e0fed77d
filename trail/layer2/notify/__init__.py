"""Notifications: tell a person when a run needs one (a step failed, asks, runs long, the
run finished), by mail, Slack, ntfy, webhooks... through apprise, off the manager's loop.

Layout: ``destinations`` (URLs, tags, the config file, secrets kept out of logs),
``messages`` (what a notice says), ``notifier`` (the event-stream client that decides what
to tell), ``courier`` (delivery threads with tries), ``ledger`` (what was sent, in the
journal file, so nothing goes twice).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trail.layer2.notify.destinations import (
    DEFAULT_KINDS,
    KINDS,
    Destination,
    DestinationError,
    destination,
    from_environment,
)
from trail.layer2.notify.messages import Notice, RunFacts, sample

if TYPE_CHECKING:
    from trail.core.dag import TrailGraph

log = logging.getLogger(__name__)

WEB_ENV = "TRAIL_WEB_URL"


def resolve(notify: Iterable[Any] | bool | None) -> list[Destination]:
    """The server's destinations: those given (a bad one raises DestinationError, before
    anything is opened), then TRAIL_NOTIFY and the config file; none for ``False``."""
    if notify is False:
        return []
    given = [] if notify is None or notify is True else notify
    if isinstance(given, (str, dict)):
        given = [given]
    found = [destination(spec, f"notify entry {i}") for i, spec in enumerate(given, 1)]
    return found + from_environment()


def wanted(graph: TrailGraph, destinations: list[Destination], notify: Any) -> bool:
    """Whether a run has anyone to tell: a destination, or a step with a notify tag."""
    # (``map`` over the steps' tags: no Python call per step of a 100,000-step trail.)
    return bool(destinations) or (notify is not False and any(
        map(dict.get, map(_tags, graph), repeat("notify"))))


_tags = attrgetter("tags")


class Notifications:
    """A run's notifier and courier, started with the server and closed after it."""

    def __init__(self, facts: RunFacts, graph: TrailGraph, destinations: list[Destination],
                 journal_path: Path | None) -> None:
        # Imported for a run that has someone to tell: most runs have no one.
        from trail.layer2.notify.courier import Courier
        from trail.layer2.notify.ledger import Ledger
        from trail.layer2.notify.notifier import Notifier

        self.ledger = Ledger(journal_path, facts.run_id)
        self.courier = Courier(self.ledger)
        self.notifier = Notifier(facts, graph, destinations, self.courier)
        for found in destinations:
            log.info("notifications to %s (%s)", found.where, ", ".join(sorted(found.kinds)))

    def start(self) -> None:
        self.notifier.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop following the run and give queued notices up to ``timeout`` seconds."""
        self.notifier.stop(timeout)
        self.courier.close(timeout)
        self.ledger.close()


def facts_for(name: str, run_id: int | None, socket_file: str) -> RunFacts:
    return RunFacts(name, run_id, socket_file, web_url=os.environ.get(WEB_ENV) or None)


def send_test(url: str, name: str = "notify-test") -> tuple[str, bool]:
    """Send a sample notice to ``url`` now; the destination's masked form and whether it
    went. DestinationError when apprise cannot use the URL."""
    from trail.layer2.notify.courier import Courier
    from trail.layer2.notify.ledger import Ledger

    found = destination(url, "the destination")
    courier = Courier(Ledger(None, None), tries=1)
    return found.where, courier.deliver(sample(facts_for(name, None, "SOCKET")), found)


__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "Destination",
    "DestinationError",
    "Notice",
    "Notifications",
    "RunFacts",
    "destination",
    "resolve",
    "send_test",
]
