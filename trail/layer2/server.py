"""TrailServer: serve a trail from a runbook script, in the foreground or in the background."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trail.core.bulk import bulk_build
from trail.core.dag import first_step, make_trail_graph
from trail.layer1.dagfile import read_dag_file
from trail.layer1.engine import open_engine
from trail.layer1.run import take_up
from trail.layer1.settings import Settings
from trail.layer2 import notify as notifications

if TYPE_CHECKING:
    from trail.layer1.events import Stopped

log = logging.getLogger(__name__)


def _calling_script() -> str:
    """The resolved path of the file that made the TrailServer (outside trail itself)."""
    package = Path(__file__).resolve().parents[1]
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<"):
            path = Path(filename).resolve()
            if package not in path.parents:
                return str(path)
        elif filename in ("<stdin>", "<console>", "<string>"):
            return f"{filename} in {os.getcwd()}"
        frame = frame.f_back  # type: ignore[assignment]
    return os.getcwd()


_SERVING: weakref.WeakSet[TrailServer] = weakref.WeakSet()  # the servers signals stop


def _stop_on_signals(server: TrailServer) -> None:
    """SIGTERM and SIGHUP (a cancelled CI job, systemd's stop, a closed terminal) stop every
    serving trail as ``stop`` does (running steps interrupted, their commands killed, the
    rest blocked), then shut it down: the run is closed in the journal as stopped and its
    socket removed. Installed from the main thread, where the script has set no handler of
    its own; with no trail serving, the signal does what it always did."""
    _SERVING.add(server)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: Any) -> None:
    serving = [server for server in list(_SERVING) if server.serving]
    if not serving:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    log.warning("%s: stopping %d trail(s)", signal.Signals(signum).name, len(serving))
    for server in serving:
        # From a thread of its own: the loop may be this very thread, inside a poll.
        threading.Thread(target=server._stop_and_shut_down, name="trail-signal",
                         daemon=True).start()


class TrailServer:
    """Serves one trail over a Unix socket; steer it with a TrailClient on ``socket_file``.

    The sockets are bound here, so a client can connect as soon as the server exists; the
    trail runs once ``serve`` is called and ``start`` is asked for. ``executor`` picks where
    steps run ('process', the default, or 'thread'). ``delay``, ``timeout`` and
    ``backlog_count`` are accepted so AutoTrail runbooks run unchanged: trail never sleeps a
    delay, and its socket needs no timeout or backlog.

    ``dag_file`` is AutoTrail's DAG file, a JSON snapshot of every step for
    ``restore_trail``: by default a new file in the temporary directory (``trail.*.json``,
    private to the user), whose path is ``server.dag_file``; ``dag_file=False`` for none.
    It is kept at most half a second behind the run (a trail so big that writing it takes
    longer than 50 ms: ten times that, so the file never takes over the run), and written
    once more at shutdown;
    the default file is removed when the server shuts down cleanly (the journal keeps the
    run), one given by path stays. ``step_output`` names a file that
    steps write their own stdout and stderr to, under either executor (``trail run`` uses
    it so that a step's prints don't scribble over the live view).

    Every change is journaled (``journal``: a path, default
    ``$XDG_STATE_HOME/trail/journal.sqlite3``; False for none) before it is acknowledged.
    ``resume`` picks the run: None takes up the journal's latest run of this trail if its
    server died, True also one that was shut down, False always starts anew. The trail's
    ``name`` (default: its first step's) and ``origin`` (default: the resolved path of the
    script that made the server; ``trail run`` gives the runbook's) tie a run to its
    journal entries, so two scripts whose first step is ``check`` never share a run.

    ``max_parallel`` caps how many steps run at once (default: no cap, as AutoTrail);
    ``pools`` caps steps by their ``pool`` tag (``{"db": 2}``: at most two steps tagged
    ``pool="db"`` at once), overriding sizes the steps declare with ``pool_size``. When
    slots are short, higher ``priority`` steps go first.

    ``notify`` lists where to tell a person when the run needs one (apprise URLs, or
    ``{"url": ..., "on": [...]}``; see the README's "Notifications"); ``TRAIL_NOTIFY`` and
    the user's config file add theirs; False sends nothing at all.
    ``dask`` (for ``executor="dask"`` or steps with ``executor="dask"``): the Dask
    scheduler's address (``"tcp://host:8786"``) or a ``distributed.Client``; default
    ``$TRAIL_DASK_ADDRESS``.

    Each step's full output also goes to a file of its own (``trail logs STEP``), beside
    the journal (``steps/run<id>-<n>.log``) or the socket (``<socket>.steps/<n>.log``):
    ``step_log_bytes`` caps what a step takes there, its one rotated file included
    (default ``$TRAIL_STEP_LOG_BYTES`` or 10 MiB; 0 for no such files).
    """

    def __init__(
        self,
        trail_definition: Any,
        socket_file: str | None = None,
        dag_file: str | bool | None = None,
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
        notify: Iterable[Any] | bool | None = None,
        dask: Any = None,
        origin: str | None = None,
        step_log_bytes: int | None = None,
    ) -> None:
        with bulk_build():  # a trail of 100,000 steps makes a million objects
            self.graph = make_trail_graph(trail_definition)
            # Which hosts get one command only (see steps/ssh.py, sharing_options); a process
            # that never imported the ssh module has no remote command to count.
            ssh = sys.modules.get("trail.layer2.steps.ssh")
            if ssh is not None:
                ssh.expect_commands(self.graph)
            destinations = notifications.resolve(notify)  # a bad URL is refused before opening
            self.context = context
            self._temporary_dag_file = dag_file is None or dag_file is True
            self.dag_file: str | None = (_temporary_dag_file() if self._temporary_dag_file
                                         else str(dag_file) if dag_file else None)
            self.name = name or first_step(self.graph).name
            settings = Settings(executor=executor, max_parallel=max_parallel,
                                pools=dict(pools or {}), step_output=step_output, dask=dask,
                                step_log_bytes=step_log_bytes)
            self.origin = origin or _calling_script()
            try:
                self._engine = open_engine(self.graph, socket_file, context, settings,
                                           name=self.name, journal=journal, resume=resume,
                                           origin=self.origin)
            except BaseException:
                self._remove_temporary_dag_file()
                raise
            self._engine.run.dag_file = self.dag_file
            self._engine.run.save_dag_file()  # there from the start, as in AutoTrail
            self.socket_file = self._engine.socket_file
            self.events_file = self._engine.sockets.events_file
            self.journal = self._engine.journal
            self.run_id = self._engine.run_id
            self.resumed = self._engine.resumed
            self._notifications: notifications.Notifications | None = None
            if notifications.wanted(self.graph, destinations, notify):
                facts = notifications.facts_for(self.name, self.run_id, self.socket_file)
                self._notifications = notifications.Notifications(
                    facts, self.graph, destinations,
                    self.journal.path if self.journal is not None else None)
            self._thread: threading.Thread | None = None
            self._done = threading.Event()
            self._served = False

    def restore_trail(self, dag_file: str,
                      state_transformation_mapping: dict[str, str] | None = None) -> None:
        """Take step states from an AutoTrail DAG file (JSON keyed by step name), before
        ``serve``. Running and Blocked steps come back Paused unless the mapping says
        otherwise (AutoTrail's default)."""
        saved = read_dag_file(dag_file, self.graph, state_transformation_mapping)
        take_up(self._engine.run, saved, f"restored from {dag_file}")

    def serve(self, threaded: bool = False) -> None:
        """Run the trail manager until a shutdown call.

        ``threaded=True`` runs it on a background thread and returns at once (AutoTrail used
        a subprocess; a thread shares the context with thread-executor steps, and process
        steps still run in processes of their own).
        """
        if self._served:
            raise RuntimeError("this TrailServer has already served; make a new one")
        self._served = True
        _stop_on_signals(self)
        if not threaded:
            self._serve()
            return
        self._thread = threading.Thread(target=self._serve, name="trail-manager", daemon=True)
        self._thread.start()
        # atexit runs the last registered first: the shutdown below, then this clean-up.
        atexit.register(self._remove_dag_file_at_exit)
        atexit.register(self._stop_at_exit)

    def _stop_and_shut_down(self) -> None:
        from trail.errors import TrailError
        from trail.layer2.client import TrailClient

        client = TrailClient(self.socket_file, timeout=10)
        try:
            client.stop(dry_run=False)
            client.shutdown(dry_run=False)
        except TrailError as exc:
            log.warning("could not stop the trail at %s: %s", self.socket_file, exc)

    def _serve(self) -> None:
        try:
            if self._notifications is not None:
                self._notifications.start()
            self._engine.serve()
            self._remove_temporary_dag_file()
        finally:
            if self._notifications is not None:
                self._notifications.close()
            self._done.set()

    def _remove_dag_file_at_exit(self) -> None:
        """The script ends right after asking for shutdown: let the server finish (its last
        DAG file write), then remove the temporary file; a server still running keeps it."""
        if self._temporary_dag_file and self._done.wait(5):
            self._remove_temporary_dag_file()

    def _remove_temporary_dag_file(self) -> None:
        if self._temporary_dag_file and self.dag_file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.dag_file)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the server has shut down; True if it has. (To wait for the trail to
        finish, use ``wait``.)"""
        return self._done.wait(timeout)

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        """Wait until the trail has finished and return its steps per state (see
        ``TrailClient.wait``); the server goes on serving until it is shut down."""
        from trail.layer2.client import TrailClient

        return TrailClient(self.socket_file, wait_while=self.alive).wait(timeout)

    def alive(self) -> bool:
        """Serving, or still shutting down: a request may take a while (a step that holds
        the GIL holds the server's loop too), but its reply will come."""
        return self._served and not self._done.is_set()

    @property
    def stopped_runs(self) -> list[Stopped]:
        """The ``stopped`` events of this server so far: each run it stopped (interrupt,
        timeout, shutdown) once over, with what it said of its work on hosts."""
        return list(self._engine.run.steps.stops.stopped)

    @property
    def serving(self) -> bool:
        """Serving requests: False from the moment a shutdown is under way (before the
        socket goes), so a shutdown is never sent to a socket about to vanish."""
        return self._served and not self._done.is_set() and not self._engine.run.stopping

    def _stop_at_exit(self) -> None:
        """Don't leave running steps and socket files behind when the script ends. A server
        already stopping (or stopped) is only waited for: shutting it down again is a no-op."""
        if not self._served or self._done.is_set():
            return
        if self.serving:
            from trail.errors import TrailConnectionError
            from trail.layer2.client import TrailClient

            try:
                TrailClient(self.socket_file, timeout=2).shutdown(dry_run=False)
            except TrailConnectionError:
                if self.serving:  # not a shutdown that raced ours: say why, move on
                    log.warning("could not shut down the trail at %s", self.socket_file)
                    return
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
            if self._notifications is not None:
                self._notifications.close(0)
            self._engine.close_unserved()
            self._remove_temporary_dag_file()
            self._done.set()


def _temporary_dag_file() -> str:
    """A new file for the DAG file where AutoTrail put it: the temporary directory (0600)."""
    descriptor, path = tempfile.mkstemp(prefix="trail.", suffix=".json")
    os.close(descriptor)
    return path
