"""Opening a run: the one place that finds or creates it in the journal, binds its sockets
and builds its loop. TrailServer and ``trail_manager`` both open runs here."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from itertools import count, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

from trail.core.dag import TrailGraph, numbered_edges, steps_in_order
from trail.core.states import State
from trail.layer1.journal import Journal, JournalRun, default_journal_path, open_run, shape_of
from trail.layer1.loop import Loop
from trail.layer1.run import Run, take_up
from trail.layer1.settings import Settings
from trail.layer1.sockets import (
    ServerSockets,
    check_owner,
    ensure_private_dir,
    new_socket_file,
    prune_stale,
)
from trail.layer1.steplogs import StepLogs, directory_for, prefix_for, step_log_bytes
from trail.layer1.timers import Timers

log = logging.getLogger(__name__)


@dataclass
class Engine:
    """An opened run, ready to serve: its Run, its Loop, and what they hold open."""

    run: Run
    loop: Loop
    sockets: ServerSockets
    journal: Journal | None
    run_id: int | None  # the run's id in the journal
    resumed: bool  # taken up from the journal rather than started anew

    @property
    def socket_file(self) -> str:
        return self.sockets.socket_file

    def serve(self) -> None:
        """Serve until a shutdown call, then close the run in the journal and the sockets."""
        try:
            self.loop.serve()
        finally:
            self.run.save_dag_file()
            if self.run.journal is not None:
                self.run.journal.close(self.run.standing.end_state()
                                       or ("stopped" if self.run.stopped else "shut down"))
            self.release()

    def close_unserved(self) -> None:
        """Give back what opening took, for a run that will never be served."""
        if self.run.journal is not None:
            self.run.journal.close("never served")
        self.release()

    def release(self) -> None:
        if self.run.step_logs is not None:
            self.run.step_logs.close()
        self.sockets.close()
        if self.journal is not None:
            self.journal.close()


def open_engine(graph: TrailGraph, socket_file: str | None, context: Any = None,
                settings: Settings | None = None, *, name: str,
                journal: str | Path | bool | None = None, resume: bool | None = None,
                timers: Timers | None = None, origin: str | None = None) -> Engine:
    """Open the run of ``graph`` called ``name``, to be served at ``socket_file``.

    ``journal`` is a path (default ``$XDG_STATE_HOME/trail/journal.sqlite3``; False for
    none). ``resume``: None takes up the journal's latest run of this trail if its server
    died, True also one that was shut down, False always starts anew. ``origin`` (the
    runbook's or calling script's resolved path) with ``name`` is the trail's identity in
    the journal. What can be refused
    (a bad executor name, a run whose trail changed) is refused before anything is left
    open: the sockets are closed and a new journal run is closed as "could not start".
    """
    settings = settings or Settings()
    if settings.max_parallel is not None and settings.max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1: {settings.max_parallel!r}")
    if socket_file is None:
        socket_file = new_socket_file(name)
    else:
        socket_file = os.path.abspath(socket_file)
        check_owner(Path(socket_file).parent, "the socket's")
        if not Path(socket_file).parent.exists():
            ensure_private_dir(Path(socket_file).parent)
    book = None
    if journal is not False:
        book = Journal(default_journal_path() if journal is None or journal is True
                       else Path(journal))
    sockets: ServerSockets | None = None
    run_id, restored = None, None
    try:
        sockets = ServerSockets(socket_file)
        try:
            prune_stale()
        except OSError as exc:  # tidying up must never stop a run from starting
            log.warning("could not remove stale socket files: %s", exc)
        if book is not None:
            steps = steps_in_order(graph)  # a step's n is its place here
            # ``map``s over the steps, each name read once: no Python code per step.
            names = list(map(attrgetter("name"), steps))
            shape = shape_of(enumerate(names), numbered_edges(graph))
            initial = list(zip(count(), names, repeat(State.READY.value),
                               map(attrgetter("pause_on_fail"), steps)))
            run_id, restored = open_run(book, name, shape, initial, socket_file, resume,
                                        origin)
        started = time.time()
        if book is not None and run_id is not None:
            started = book.started(run_id) or started
        info = {"name": name, "socket": socket_file, "events": sockets.events_file,
                "started": started,
                "run": run_id, "resumed": restored is not None, "origin": origin,
                "journal": str(book.path) if book is not None else None}
        logs_cap = step_log_bytes(settings.step_log_bytes)
        logs_dir = directory_for(book.path if book is not None else None, socket_file)
        info["step_logs"] = str(logs_dir) if logs_cap else None
        run = Run(graph, context, settings,
                  journal=JournalRun(book, run_id) if book is not None and run_id is not None
                  else None,
                  timers=timers, info=info)
        if run.journal is not None:
            # Named now, not discovered after a crash: what of the context cannot be saved.
            problems = run.durable.save_from_start()
            for problem in problems:
                log.warning("%s", problem)
            run.info["context_problems"] = problems
        if logs_cap:
            run.step_logs = StepLogs(logs_dir, prefix_for(run_id), logs_cap,
                                     run.timers.call_later)
        if restored:
            run.durable.restore("recovered from the journal")
            take_up(run, restored, "recovered from the journal")
        run.commit()
        if restored and book is not None and run_id is not None:
            stop_orphans_on_dask(book, run_id, settings)
    except BaseException:
        if sockets is not None:
            sockets.close()
        if book is not None:
            if run_id is not None and restored is None:
                book.close_run(run_id, "could not start")
            with contextlib.suppress(Exception):
                book.close()
        raise
    loop = Loop(run, sockets.api, sockets.events)
    return Engine(run, loop, sockets, book, run_id, restored is not None)


def stop_orphans_on_dask(book: Journal, run_id: int, settings: Settings | None) -> None:
    """Steps of the dead server that ran on Dask and still run are stopped before serving."""
    where = [entry["message"] for entry in book.timeline(run_id, messages=True)
             if entry["kind"] == "where"]
    if where:
        from trail.layer1.executors.dask import stop_orphans

        stop_orphans(where, settings.dask if settings is not None else None)
