"""TrailServer: serve a trail from a runbook script, in the foreground or in the background."""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from trail.core.dag import make_trail_graph, pool_sizes, steps_in_order
from trail.core.states import State
from trail.errors import TrailError
from trail.layer1.journal import Journal, SavedStep, default_journal_path, open_run, shape_of
from trail.layer1.manager import TrailManager
from trail.layer1.sockets import ServerSockets, ensure_private_dir, new_socket_file

log = logging.getLogger(__name__)


class TrailServer:
    """Serves one trail over a Unix socket; steer it with a TrailClient on ``socket_file``.

    The sockets are bound here, so a client can connect as soon as the server exists; the
    trail runs once ``serve`` is called and ``start`` is asked for. ``executor`` picks where
    steps run ('process', the default, or 'thread'). ``dag_file``, ``delay``, ``timeout`` and
    ``backlog_count`` are accepted so AutoTrail runbooks run unchanged: trail never sleeps a
    delay, and its socket needs no timeout or backlog. ``step_output`` names a file that
    steps write their own stdout and stderr to, under either executor (``trail run`` uses
    it so that a step's prints don't scribble over the live view).

    Every change is journaled (``journal``: a path, default
    ``$XDG_STATE_HOME/trail/journal.sqlite3``; False for none) before it is acknowledged.
    ``resume`` picks the run: None takes up the journal's latest run of this trail if its
    server died, True also one that was shut down, False always starts anew. The trail's
    ``name`` (default: its first step's) is what ties a run to its journal entries.

    ``max_parallel`` caps how many steps run at once (default: no cap, as AutoTrail);
    ``pools`` caps steps by their ``pool`` tag (``{"db": 2}``: at most two steps tagged
    ``pool="db"`` at once), overriding sizes the steps declare with ``pool_size``. When
    slots are short, higher ``priority`` steps go first.
    """

    def __init__(
        self,
        trail_definition: Any,
        socket_file: str | None = None,
        dag_file: str | None = None,
        context: Any = None,
        delay: float | None = None,
        timeout: float | None = None,
        backlog_count: int | None = None,
        *,
        executor: str = "process",
        name: str | None = None,
        step_output: str | None = None,
        journal: str | Path | bool | None = None,
        resume: bool | None = None,
        max_parallel: int | None = None,
        pools: dict[str, int] | None = None,
    ) -> None:
        self.graph = make_trail_graph(trail_definition)
        # What can be refused is refused before a socket is bound or a run journaled.
        if max_parallel is not None and max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1: {max_parallel!r}")
        pool_sizes(self.graph)  # steps of one pool that disagree on its size
        self.context = context
        self.dag_file = dag_file
        self.name = name or steps_in_order(self.graph)[0].name
        if socket_file is None:
            socket_file = new_socket_file(self.name)
        else:
            socket_file = os.path.abspath(socket_file)
            parent = Path(socket_file).parent
            if not parent.exists():
                ensure_private_dir(parent)
        self.socket_file = socket_file
        self.journal: Journal | None = None
        run_id, restored = None, None
        if journal is not False:
            path = (default_journal_path() if journal is None or journal is True
                    else Path(journal))
            self.journal = Journal(path)
            records = steps_in_order(self.graph)
            shape = shape_of([(s.tags["n"], s.name) for s in records],
                             [(p.tags["n"], c.tags["n"]) for p, c in self.graph.edges])
            initial = [(s.tags["n"], s.name, State.READY.value, s.pause_on_fail)
                       for s in records]
        self._sockets = ServerSockets(socket_file)
        try:
            if self.journal is not None:
                run_id, restored = open_run(self.journal, self.name, shape, initial,
                                            socket_file, resume)
        except BaseException:
            self._sockets.close()
            if self.journal is not None:
                self.journal.close()
            raise
        self.run_id = run_id
        self.resumed = restored is not None
        self.events_file = self._sockets.events_file
        try:
            self._manager = TrailManager(
                self.graph,
                self._sockets.api,
                self._sockets.events,
                context,
                executor,
                info={"name": self.name, "socket": socket_file, "events": self.events_file,
                      "run": run_id, "resumed": restored is not None,
                      "journal": str(self.journal.path) if self.journal else None},
                step_output=step_output,
                journal=self.journal,
                journal_run=run_id,
                restored=restored,
                max_parallel=max_parallel,
                pools=pools,
            )
        except BaseException:
            self._sockets.close()
            if self.journal is not None:
                if run_id is not None and restored is None:
                    self.journal.close_run(run_id, "could not start")
                self.journal.close()
            raise
        if dag_file is not None:
            self._manager.dag_file = dag_file
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._served = False

    def restore_trail(self, dag_file: str,
                      state_transformation_mapping: dict[str, str] | None = None) -> None:
        """Take step states from an AutoTrail DAG file (JSON keyed by step name), before
        ``serve``. Running and Blocked steps come back Paused unless the mapping says
        otherwise (AutoTrail's default)."""
        mapping = state_transformation_mapping or {State.BLOCKED.value: State.PAUSED.value,
                                                   State.RUNNING.value: State.PAUSED.value}
        with open(dag_file) as source:
            data = json.load(source)
        saved = {}
        for step in steps_in_order(self.graph):
            entry = data.get(step.name)
            if entry is None:
                raise TrailError(f"step {step.name!r} is not in the DAG file {dag_file}")
            parents = sorted(p.name for p in self.graph.predecessors(step))
            if sorted(entry.get("parents", [])) != parents:
                raise TrailError(f"the parents of step {step.name!r} differ from the DAG "
                                 f"file {dag_file}")
            state = mapping.get(entry["State"], entry["State"])
            saved[step.tags["n"]] = SavedStep(
                step.tags["n"], step.name, state, step.pause_on_fail, 0,
                entry.get("Return value"), None, None, entry.get("Output messages", []),
                entry.get("Prompt messages", []), entry.get("Input messages", []))
        self._manager.restore(saved, f"restored from {dag_file}")

    def serve(self, threaded: bool = False) -> None:
        """Run the trail manager until a shutdown call.

        ``threaded=True`` runs it on a background thread and returns at once (AutoTrail used
        a subprocess; a thread shares the context with thread-executor steps, and process
        steps still run in processes of their own).
        """
        if self._served:
            raise RuntimeError("this TrailServer has already served; make a new one")
        self._served = True
        if not threaded:
            self._serve()
            return
        self._thread = threading.Thread(target=self._serve, name="trail-manager", daemon=True)
        self._thread.start()
        atexit.register(self._stop_at_exit)

    def _serve(self) -> None:
        try:
            self._manager.run()
        finally:
            self._sockets.close()
            if self.journal is not None:
                self.journal.close()
            self._done.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the server has shut down; True if it has."""
        return self._done.wait(timeout)

    @property
    def serving(self) -> bool:
        return self._served and not self._done.is_set()

    def _stop_at_exit(self) -> None:
        """Don't leave running steps and socket files behind when the script ends."""
        if not self.serving:
            return
        from trail.layer2.client import TrailClient

        try:
            TrailClient(self.socket_file, timeout=2).shutdown(dry_run=False)
        except Exception as exc:  # the interpreter is exiting; say why and move on
            log.warning("could not shut down the trail at %s: %s", self.socket_file, exc)
            return
        self.join(10)

    def __enter__(self) -> TrailServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.serving:
            self._stop_at_exit()
        elif not self._served:
            self._sockets.close()
            if self.journal is not None:
                if self.run_id is not None:
                    self.journal.close_run(self.run_id, "never served")
                self.journal.close()
            self._done.set()
