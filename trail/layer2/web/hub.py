"""The web page's view of every trail: found as ``trail ls`` finds them, followed by events.

A scanner thread looks for trail sockets (this user's socket directory, or the ``--socket``
paths given) twice a second. Each live trail gets a ``Watched``: a TrailClient, a
subscription to its event stream and a StatusMirror kept current from it, in a thread of
its own. Every change is handed to the page's subscribers (server-sent event streams) on
the web server's event loop. A trail whose server goes away is kept, marked ended; a new
one appears without a restart. Nothing here ever calls a mutating call by itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import graphviz

from trail.core.states import State
from trail.errors import TrailError
from trail.layer1.calls import SPECS, StatusField
from trail.layer1.events import ShuttingDown, StateChanged
from trail.layer1.sockets import is_live
from trail.layer2.client import TrailClient
from trail.layer2.diagram import trail_dot
from trail.layer2.mirror import StatusMirror

log = logging.getLogger(__name__)

FIELDS = (StatusField.STATE, StatusField.STARTED_AT, StatusField.FINISHED_AT,
          StatusField.ATTEMPT, StatusField.RETURN_VALUE, StatusField.OUTPUT_MESSAGES,
          StatusField.UNREPLIED_PROMPT_MESSAGE)
# Calls that hold steps back (pause, block, interrupt, stop): their dry run also names the
# steps below that would then wait. Resuming, skipping or answering strands nothing.
HOLDING = frozenset({"pause", "pause_branch", "block", "interrupt", "stop"})
# A step's newest output lines in the rows the pages are sent (at each of its events): the
# whole output, a line more each time, made a chatty step's traffic grow as its square.
# The step panel links to the whole of it.
PAGE_OUTPUT_LINES = 200
QUEUE_SIZE = 2000  # messages a page may lag behind before it is sent a fresh snapshot
LIST_EVERY = 0.25  # seconds between lists sent to the pages that show every trail
FORGET_AFTER = 3600.0  # seconds an ended trail stays followed; then the journal shows it
# graphviz lays out a few thousand nodes in minutes, and nobody reads such a drawing: a
# bigger trail's page shows its steps grouped, without the diagram.
DIAGRAM_MAX = 1000

_NODE = re.compile(r'<g id="(node\d+)" class="node">\s*<title>(\d+)</title>')


def call_table() -> list[dict[str, Any]]:
    """The table of calls as the page builds its controls from it."""
    return [{
        "name": spec.name, "command": spec.command_name, "summary": spec.summary,
        "selects": spec.selects, "mutating": spec.mutating, "whole_trail": spec.whole_trail,
        "dry_run_default": spec.dry_run_default, "result": spec.result.value,
        "arguments": [{"name": a.name, "cli": a.cli, "required": a.required,
                       "default": None if a.required else a.default, "help": a.help}
                      for a in spec.arguments],
    } for spec in SPECS]


def diagram_svg(steps: list[dict[str, Any]], edges: Iterable[Any],
                states: dict[int, str]) -> str:
    """The trail's diagram (as ``trail dot`` draws it) as inline SVG whose step nodes carry
    ``data-step``, ``data-n`` and ``data-state``: the page colours them by state with CSS,
    so a change recolours a node without drawing the graph again."""
    if len(steps) > DIAGRAM_MAX:
        return (f'<p class="muted" data-no-diagram>No diagram: {len(steps):,} steps (it is '
                f'drawn up to {DIAGRAM_MAX:,}; <code>trail dot</code> draws any).</p>')
    names = {int(tags["n"]): str(tags["name"]) for tags in steps}
    try:
        svg = trail_dot(steps, [tuple(edge) for edge in edges]).pipe(format="svg").decode()
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as exc:
        log.warning("no diagram: %s", exc)  # the page still shows the table and steers
        return ('<p class="muted">No diagram: drawing it needs graphviz\'s <code>dot</code> '
                '(apt-get install graphviz).</p>')
    svg = svg[svg.index("<svg"):]  # no XML prolog or doctype inside HTML

    def mark(match: re.Match[str]) -> str:
        n = int(match.group(2))
        return (f'<g id="{match.group(1)}" class="node" data-n="{n}" '
                f'data-step="{escape(names.get(n, ""))}" '
                f'data-state="{escape(states.get(n, ""))}"><title>{n}</title>')

    return _NODE.sub(mark, svg)


@dataclass(eq=False)
class Subscriber:
    """A page's stream: ``key`` is a run's key, or None for the list of trails."""

    key: str | None
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


RESYNC_EVERY = 0.5  # seconds: the least time between two reads of a run's whole status


def page_row(row: dict[str, Any]) -> dict[str, Any]:
    """A step's row as the pages get it: its newest PAGE_OUTPUT_LINES output lines, and
    ``output_count``, how many it has."""
    output = row.get(StatusField.OUTPUT_MESSAGES) or []
    row["output_count"] = len(output)
    if len(output) > PAGE_OUTPUT_LINES:
        row[StatusField.OUTPUT_MESSAGES] = output[-PAGE_OUTPUT_LINES:]
    return row


class Watched:
    """One live trail, followed through its event stream into a StatusMirror."""

    def __init__(self, hub: Hub, socket: str) -> None:
        self.hub = hub
        self.socket = socket
        self.client = TrailClient(socket, timeout=hub.timeout, by=hub.by)
        self.lock = threading.Lock()
        self.mirror = StatusMirror(FIELDS)
        self.live = True
        self.seen = time.time()
        self.ended_at: float | None = None
        self.behind = 0  # the server's last event, when it had not arrived a moment ago
        self.gap = False  # events were lost and the status not read again since
        self.resynced = 0.0  # monotonic time the status was last read again
        stream = self.client.subscribe()  # before the status read: nothing falls between
        try:
            self.info = self.client.info()
            shape = self.client.graph()
            self.mirror.load(self.client)
        except BaseException:
            stream.close()
            raise
        self.stream = stream
        self.steps: list[dict[str, Any]] = shape["steps"]
        self.edges: list[list[int]] = shape["edges"]
        self.name = str(self.info.get("name") or "trail")
        run = self.info.get("run")
        same_journal = self.info.get("journal") == str(hub.journal)
        self.key = str(run) if run is not None and same_journal else f"live-{Path(socket).stem}"
        self.svg = diagram_svg(self.steps, self.edges, self.states())

    def stranded(self, call: str, changed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The steps that a call holding ``changed`` back would leave unable to run: those
        below them (for stop: every step) not finished yet and not changed themselves."""
        if call not in HOLDING or not changed:
            return []
        chosen = {int(step["n"]) for step in changed}
        with self.lock:
            states = self.states()
        if call == "stop":
            below = set(states)
        else:
            children: dict[int, list[int]] = {}
            for parent, child in self.edges:
                children.setdefault(int(parent), []).append(int(child))
            below, todo = set(), list(chosen)
            while todo:
                for child in children.get(todo.pop(), []):
                    if child not in below:
                        below.add(child)
                        todo.append(child)
        names = {int(tags["n"]): tags["name"] for tags in self.steps}
        return [{"n": n, "name": names[n]} for n in sorted(below - chosen)
                if n in states and not State(states[n]).finished]

    def states(self) -> dict[int, str]:
        return {n: row[StatusField.STATE] for n, row in self.mirror.rows.items()}

    def row(self, n: int) -> dict[str, Any]:
        row = page_row(dict(self.mirror.rows[n]))
        row["last"] = self.mirror.last(n)
        row["question"] = self.mirror.question(n)
        return row

    def output(self, n: int) -> list[Any] | None:
        """Step ``n``'s output as the server keeps it (None: no such step)."""
        row = self.mirror.rows.get(n)
        return None if row is None else list(row.get(StatusField.OUTPUT_MESSAGES) or [])

    def summary(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "socket": self.socket, "live": self.live,
                "pid": self.info.get("pid"), "run": self.info.get("run"),
                "counts": self.mirror.counts(), "ended_at": self.ended_at}

    def snapshot(self) -> dict[str, Any]:
        """Everything a run's page shows, as it is now (call with the lock held)."""
        return {"type": "snapshot", **self.summary(), "svg": self.svg,
                "rows": [self.row(n) for n in sorted(self.mirror.rows)],
                "tags": {int(tags["n"]): tags for tags in self.steps},
                "calls": call_table(), "journal_run": self.info.get("run")}

    def resync(self) -> bool:
        """Events were lost: read the status whole and give the pages a new snapshot."""
        with self.lock:
            try:
                self.mirror.load(self.client)
            except TrailError as exc:
                log.debug("no status from %s: %s", self.socket, exc)
                return False
            self.resynced = time.monotonic()
            self.hub.publish(self.key, self.snapshot())
        self.hub.list_changed()
        return True

    def catch_up(self) -> None:
        """Events a busy run sent may be lost (ZeroMQ drops them for a lagging reader).
        Lost in the middle of a burst, a gap in their numbers said so: the status is read
        again now. Lost at its end, no later event tells of the gap: when the server has
        sent more than arrived, and half a second later still nothing came, the status is
        read again."""
        if self.gap and self.resync():
            self.gap = False
        try:
            published = int(self.client.info().get("published", 0))
        except TrailError as exc:  # busy, or going: the next quiet moment asks again
            log.debug("no info from %s: %s", self.socket, exc)
            return
        last = self.stream.last_seq
        behind = last is not None and published > last
        if behind and self.behind == published:
            if not self.resync():
                return
            self.stream.settle(published)
            published = 0
        self.behind = published if behind else 0

    def follow(self) -> None:
        """Apply the trail's events until its server goes away (the thread's body)."""
        try:
            while not self.hub.stopping.is_set():
                missed = self.stream.missed
                event = self.stream.next(0.5)
                if event is None:
                    if not _alive(self.socket):
                        break
                    self.catch_up()
                    continue
                if self.stream.missed > missed:
                    self.gap = True  # events before this one were lost
                if self.gap and time.monotonic() - self.resynced > RESYNC_EVERY:
                    # (At most so often: a flood that keeps losing events would otherwise
                    # have the status read whole after every event.)
                    self.gap = not self.resync()
                    continue
                with self.lock:
                    row = self.mirror.apply(event)
                    message: dict[str, Any] = {"type": "event", "event": event.to_dict(),
                                               "counts": self.mirror.counts()}
                    if row is not None:
                        message["row"] = self.row(event["n"])
                    self.hub.publish(self.key, message)
                if isinstance(event, (StateChanged, ShuttingDown)):
                    self.hub.list_changed()
        except TrailError as exc:  # an event no trail would send: stop following, say why
            log.warning("stopped following %s: %s", self.socket, exc)
        finally:
            self.stream.close()
            self.client.close()
            with self.lock:
                self.live = False
                self.ended_at = time.time()
                self.hub.publish(self.key, {"type": "ended", "ended_at": self.ended_at})
            self.hub.list_changed()


def _alive(socket: str) -> bool:
    try:
        return is_live(socket)
    except OSError:
        return False


class Hub:
    """Every trail the page knows, and the pages listening to them."""

    def __init__(self, find: Callable[[], list[str]], journal: Path, timeout: float = 5.0,
                 scan_every: float = 0.5, by: str = "web") -> None:
        self.find = find
        self.by = by  # who the changes made from the page are journaled as
        self.journal = journal
        self.timeout = timeout
        self.scan_every = scan_every
        self.trails: dict[str, Watched] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.subscribers: set[Subscriber] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._failed: dict[str, float] = {}  # socket -> when it last could not be followed
        self._scanner: threading.Thread | None = None
        self._list_due = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.scan()
        self._scanner = threading.Thread(target=self._scan_forever, name="trail-web-scan",
                                         daemon=True)
        self._scanner.start()

    def stop(self) -> None:
        self.stopping.set()

    def _scan_forever(self) -> None:
        while not self.stopping.wait(self.scan_every):
            try:
                self.scan()
            except (OSError, TrailError) as exc:
                log.warning("looking for trails failed: %s", exc)
            except Exception:  # the next pass may do better; the page must keep finding
                log.exception("looking for trails failed")

    def scan(self) -> None:
        """Follow every live trail not followed yet; forget those long ended."""
        with self.lock:
            now = time.time()
            for key, watched in list(self.trails.items()):
                if watched.ended_at is not None and now - watched.ended_at > FORGET_AFTER:
                    del self.trails[key]
            followed = {w.socket for w in self.trails.values() if w.live}
        for socket in self.find():
            if socket in followed or time.monotonic() - self._failed.get(socket, -60) < 5:
                continue
            if not _alive(socket):
                continue
            try:
                watched = Watched(self, socket)
            except (TrailError, OSError) as exc:
                self._failed[socket] = time.monotonic()
                log.info("cannot follow the trail at %s: %s", socket, exc)
                continue
            with self.lock:
                self.trails[watched.key] = watched
            threading.Thread(target=watched.follow, name=f"trail-web-{watched.key}",
                             daemon=True).start()
            self.list_changed()

    def trail(self, key: str) -> Watched | None:
        with self.lock:
            return self.trails.get(key)

    def listing(self) -> list[dict[str, Any]]:
        with self.lock:
            trails = list(self.trails.values())
        listed = []
        for watched in trails:
            with watched.lock:
                listed.append(watched.summary())
        return sorted(listed, key=lambda row: (not row["live"], row["name"], row["key"]))

    # --- pages' streams (subscribe and unsubscribe run on the event loop) ------------

    def subscribe(self, key: str | None) -> Subscriber | None:
        """A stream for the run ``key`` (greeted with its snapshot), or for the list."""
        subscriber = Subscriber(key)
        if key is None:
            subscriber.queue.put_nowait({"type": "trails", "trails": self.listing()})
            self.subscribers.add(subscriber)
            return subscriber
        watched = self.trail(key)
        if watched is None:
            return None
        with watched.lock:  # no event of this trail between the snapshot and the stream
            subscriber.queue.put_nowait(watched.snapshot())
            if not watched.live:
                subscriber.queue.put_nowait({"type": "ended", "ended_at": watched.ended_at})
            self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def publish(self, key: str, message: dict[str, Any]) -> None:
        """Hand ``message`` to the streams of run ``key`` (from any thread)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._deliver, key, message)

    def list_changed(self) -> None:
        """Send the list to its pages soon: changes coming fast are sent together, at most
        four times a second (a busy run changes states thousands of times a second)."""
        if self._list_due or self.loop is None or self.loop.is_closed():
            return
        self._list_due = True  # a race here costs at most one list more
        loop = self.loop
        loop.call_soon_threadsafe(loop.call_later, LIST_EVERY, self._deliver_list)

    def _deliver(self, key: str, message: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            if subscriber.key == key:
                self._put(subscriber, message)

    def _deliver_list(self) -> None:
        self._list_due = False
        listeners = [s for s in self.subscribers if s.key is None]
        if listeners:
            message = {"type": "trails", "trails": self.listing()}
            for subscriber in listeners:
                self._put(subscriber, message)

    def _put(self, subscriber: Subscriber, message: dict[str, Any]) -> None:
        try:
            subscriber.queue.put_nowait(message)
        except asyncio.QueueFull:  # a page that fell far behind starts over from now
            while not subscriber.queue.empty():
                subscriber.queue.get_nowait()
            subscriber.queue.put_nowait({"type": "resync"})
