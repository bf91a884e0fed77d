"""monitor_trail: call handlers as steps change, from the server's event stream."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from typing import Any

from trail.core.states import State
from trail.errors import TrailConnectionError
from trail.layer1.wire import StatusField
from trail.layer2.client import TrailClient
from trail.layer2.mirror import StatusMirror

Rows = list[dict[str, Any]]
FilterHandler = tuple[Callable[[Rows], Rows], Callable[[Rows], Any]]

DEFAULT_STATUS_KWARGS: dict[str, Any] = {
    "fields": [StatusField.STATE, StatusField.UNREPLIED_PROMPT_MESSAGE,
               StatusField.OUTPUT_MESSAGES, StatusField.RETURN_VALUE],
    "states": [State.RUNNING.value, State.FAILED.value, State.PAUSED.value,
               State.PAUSED_ON_FAIL.value],
}


def monitor_trail(
    trail_client: TrailClient,
    status_filter_handler_pairs: Iterable[FilterHandler],
    status_kwargs: dict[str, Any] | None = None,
    delay: float = 60,
    max_tries: int = 3,
    until_finished: bool = False,
) -> None:
    """Call each ``handler(filter(rows))`` with the status rows of steps that just changed.

    AutoTrail polled ``status()`` every ``delay`` seconds and missed whatever began and
    ended in between; this follows the server's event stream, so a step that runs for a
    microsecond is still seen Running, then Succeeded. ``status_kwargs`` picks the fields
    and states (and tags) as for ``status()``; a handler gets rows of steps in those states
    only, built at the moment of the change. Returns when the server goes away (after
    ``max_tries`` silent checks, one every ``min(delay, 1)`` s without events), or, with
    ``until_finished``, once the trail is finished.
    """
    kwargs = dict(DEFAULT_STATUS_KWARGS if status_kwargs is None else status_kwargs)
    fields = kwargs.pop("fields", None) or DEFAULT_STATUS_KWARGS["fields"]
    states = set(kwargs.pop("states", None) or [])
    tags = kwargs
    pairs = list(status_filter_handler_pairs)

    def emit(rows: Rows) -> None:
        shown = [
            {"n": r["n"], "Name": r["Name"], **{f: copy.deepcopy(r.get(f)) for f in fields}}
            for r in rows
            if not states or r[StatusField.STATE] in states
        ]
        if not shown:
            return
        for keep, handle in pairs:
            chosen = keep(shown)
            if chosen:
                handle(chosen)

    with trail_client.subscribe() as stream:
        mirror = StatusMirror(fields)
        mirror.load(trail_client, **tags)
        emit(list(mirror.rows.values()))
        silent = 0
        while True:
            event = stream.next(timeout=min(delay, 1.0))
            if event is None:
                if not os.path.exists(trail_client.socket_file):
                    return  # the server shut down
                try:
                    info = trail_client.info()
                except TrailConnectionError:
                    silent += 1
                    if silent >= max_tries or not os.path.exists(trail_client.socket_file):
                        return
                    continue
                silent = 0
                if until_finished and info["finished"]:
                    return
                continue
            row = mirror.apply(event)
            if row is not None:
                emit([row])
