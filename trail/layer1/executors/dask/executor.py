"""The trail's side of the dask executor: submission, tracking, and take-up after a crash."""

from __future__ import annotations

import logging
import os
import queue
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from trail.layer1.executors.base import (
    Executor,
    Kind,
    Message,
    Outcome,
    StepChannel,
    TrailEnvironment,
)
from trail.layer1.executors.dask.links import DaskRun, Links
from trail.layer1.executors.dask.wire import CONNECT_TIMEOUT
from trail.layer1.executors.process import _write_all

log = logging.getLogger(__name__)

ADDRESS_VARIABLE = "TRAIL_DASK_ADDRESS"
CALLBACK_VARIABLE = "TRAIL_DASK_CALLBACK_HOST"  # the host workers reach the trail on


def dask_missing() -> str | None:
    """Why the dask executor cannot be used here, or None if it can."""
    import importlib.util

    for module in ("distributed", "cloudpickle"):
        if importlib.util.find_spec(module) is None:
            return (f"the dask executor needs the {module!r} package: "
                    f"pip install 'trail[dask]'")
    return None


class DaskExecutor(Executor):
    """Runs each step as a Dask task whose step runs in a child process on the worker.

    ``address``: the scheduler's address (``tcp://host:8786``), a ``distributed.Client``, or
    None for ``$TRAIL_DASK_ADDRESS``. Nothing connects until the executor is bound to a run.
    """

    name = "dask"

    def __init__(self, step_output: str | None = None, address: Any = None) -> None:
        missing = dask_missing()
        if missing:
            raise ValueError(missing)
        self.step_output = step_output  # what steps print comes here (else: the worker's log)
        self._address = address if address is not None else os.environ.get(ADDRESS_VARIABLE)
        if not self._address:
            raise ValueError(f"the dask executor needs the scheduler's address: pass "
                             f"dask='tcp://host:8786' (--dask) or set ${ADDRESS_VARIABLE}")
        self._client: Any = None
        self._own_client = False
        self._runs: dict[int, DaskRun] = {}
        self._to_kill: dict[int, DaskRun] = {}  # interrupted, ended, their kill() still to come
        self._token = secrets.token_hex(32)
        self._prefix = f"trail-step-{uuid.uuid4().hex[:12]}"
        self._inbox: queue.Queue[Message] = queue.Queue()
        # Made in bind: an executor made only to check a name (Run does) holds no descriptor.
        self._wake_r = self._wake_w = -1  # the links' thread -> the loop
        self._links: Links | None = None
        self._connecting: threading.Thread | None = None
        self._ready = False  # the connection was tried (see _connect_error)
        self._connect_error = ""
        self._pending: list[tuple[DaskRun, bytes]] = []  # started before the connection was
        self._ready_lock = threading.Lock()
        self.endpoint: tuple[str, int] | None = None

    def bind(self, deliver: Any, call_later: Any) -> None:
        super().bind(deliver, call_later)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._links = Links(self._token, self._runs, self._post, self._printed)
        self._connecting = threading.Thread(target=self._connect, name="trail-dask-connect",
                                            daemon=True)
        self._connecting.start()

    def watch(self) -> list[int]:
        return [self._wake_r] if self._wake_r >= 0 else []

    def _connect(self) -> None:
        """On a thread of its own (a scheduler that does not answer must not hold up the
        loop): reach the scheduler, listen for the workers, start their agents, then submit
        what waited meanwhile."""
        assert self._links is not None
        try:
            from distributed import Client

            from trail.layer1.executors.dask.worker import start_agent

            if isinstance(self._address, str):
                self._client = Client(self._address, timeout=CONNECT_TIMEOUT,
                                      set_as_default=False)
                self._own_client = True
            else:
                self._client = self._address
            scheduler = self._client.scheduler.address
            host = os.environ.get(CALLBACK_VARIABLE) or _host_towards(scheduler)
            self.endpoint = self._links.start(host)
            log.info("dask executor: scheduler %s, workers call back on %s:%s", scheduler,
                     *self.endpoint)
        except Exception as exc:  # the steps waiting for it fail, saying why
            where = self._address if isinstance(self._address, str) else "its client"
            self._connect_error = (f"cannot reach the Dask scheduler at {where}: "
                                   f"{type(exc).__name__}: {exc}")
            log.error("dask executor: %s", self._connect_error)
        else:
            try:
                # Ahead of the first step, so that none waits for its worker's agent to
                # start (a second or so) while another's is up (a worker that joins later
                # starts its agent at its first step).
                self._client.run(start_agent)
            except Exception as exc:
                log.warning("dask executor: could not start the workers' agents: %s", exc)
        with self._ready_lock:
            self._ready = True
            pending, self._pending = self._pending, []
        for run, payload in pending:
            self._submit(run, payload)

    # --- the Executor interface ---

    def prepare(self, run_id: int) -> TrailEnvironment:
        self._runs[run_id] = DaskRun(run_id, key=f"{self._prefix}-{run_id}")
        return TrailEnvironment(_ManagerChannel(self, run_id))

    def where(self, run_id: int) -> str | None:
        # The task's key is all a take-up needs to find the step (stop_orphans); the
        # worker it runs on is journaled too once its agent asks for the go.
        return f"submitted to Dask as task {self._runs[run_id].key}"

    def discard(self, run_id: int) -> None:
        self._runs.pop(run_id, None)

    def start(self, run_id: int, function: Callable[..., Any], args: Any,
              kwargs: dict[str, Any]) -> int | None:
        import cloudpickle

        run = self._runs[run_id]
        try:
            payload = cloudpickle.dumps((function, args, kwargs))
        except Exception as exc:
            name = getattr(function, "__qualname__", repr(function))
            error = TypeError(f"step function {name} cannot be sent to Dask workers: it or "
                              f"its arguments cannot be pickled ({type(exc).__name__}: "
                              f"{exc}); make it importable on the workers or picklable")
            self._refuse(run, error)
            return None
        with self._ready_lock:
            if not self._ready:
                self._pending.append((run, payload))
                return None
        self._submit(run, payload)
        return None

    def _submit(self, run: DaskRun, payload: bytes) -> None:
        from trail.layer1.executors.dask.worker import work

        if self._connect_error:
            self._refuse(run, ConnectionError(self._connect_error))
            return
        if run.interrupted:
            self._post(Message(run.run_id, Kind.EXIT, "was interrupted before it was submitted"))
            return
        assert self.endpoint is not None and self._links is not None
        run.future = self._client.submit(work, self.endpoint, self._token, run.run_id, payload,
                                         self.step_output is not None, run.key, key=run.key,
                                         pure=False, retries=0)
        run.future.add_done_callback(lambda _f, r=run.run_id: self._links.future_done(r))

    def _refuse(self, run: DaskRun, error: BaseException) -> None:
        """The run fails without having been submitted (delivered through the loop, like
        everything else)."""
        self._post(Message(run.run_id, Kind.RESULT, Outcome(False, error, "")))
        self._post(Message(run.run_id, Kind.EXIT, "was never submitted"))

    def collect(self, fd: int) -> bool:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return False
            if message.kind == Kind.EXIT:
                run = self._runs.pop(message.run_id, None)
                if run is not None and run.interrupted and run.link is not None:
                    # Its agent still watches the groups for stragglers: kill() reaches it.
                    self._to_kill[run.run_id] = run
            self._deliver(message)

    def reply(self, run_id: int, message: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None and self._links is not None:
            self._links.send(run, {"reply": message})

    def interrupt(self, run_id: int) -> None:
        run = self._runs.get(run_id)
        if run is None or self._links is None:
            return
        with self._links.lock:
            run.interrupted = True
            connected = run.connected
        if connected:
            self._links.send(run, {"signal": "term"})
        elif run.future is not None:
            run.future.cancel()

    def kill(self, run_id: int) -> None:
        run = self._runs.get(run_id) or self._to_kill.pop(run_id, None)
        if run is not None and self._links is not None:
            self._links.send(run, {"signal": "kill"})

    def close(self, grace: float) -> None:
        if self._connecting is not None:
            self._connecting.join(CONNECT_TIMEOUT + 5)
        runs = list(self._runs.values())
        for run in runs:
            self.interrupt(run.run_id)
        for run_id in list(self._to_kill):
            self.kill(run_id)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(r.connected and not r.ended for r in runs):
            time.sleep(0.02)
        for run in runs:
            self.kill(run.run_id)
        if self._links is not None:
            self._links.close()  # the agents stop what is left of this trail's steps
        if self._own_client and self._client is not None:
            try:
                self._client.close(timeout=5)
            except Exception as exc:  # the cluster may be gone already
                log.warning("closing the Dask client: %s", exc)
        self._runs.clear()
        if self._wake_w >= 0:
            os.close(self._wake_w)
            self._wake_w = -1
        # _wake_r stays open: the loop may still have it registered.

    # --- from the links' thread ---

    def _post(self, message: Message) -> None:
        self._inbox.put(message)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # full: the loop will read it; closed: the executor is closing

    def _printed(self, data: bytes) -> None:
        """What a step printed on its worker goes to ``step_output``, as under the process
        executor (``trail run`` keeps it off the live view's terminal)."""
        if self.step_output is None:
            return
        try:
            fd = os.open(self.step_output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot write a dask step's output to %s: %s", self.step_output, exc)


class _ManagerChannel(StepChannel):
    """What the processors' environment talks through, in the manager: their output and
    prompts reach the run as a step's would; a reply cannot be waited for there."""

    def __init__(self, executor: DaskExecutor, run_id: int) -> None:
        self._executor = executor
        self._run_id = run_id

    def send(self, kind: str, payload: Any) -> None:
        self._executor._post(Message(self._run_id, kind, payload))

    def receive(self, timeout: float | None) -> Any:
        raise RuntimeError("a dask step's pre- or post-processor cannot wait for input: it "
                           "runs in the trail's manager; ask from the action function")

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to the worker as a placeholder; the step's process puts its own channel there.
        return (_Placeholder, ())


class _Placeholder(StepChannel):
    def send(self, kind: str, payload: Any) -> None:
        raise RuntimeError("this trail_env is not the step's own")

    def receive(self, timeout: float | None) -> Any:
        raise RuntimeError("this trail_env is not the step's own")


def _host_towards(address: str) -> str:
    """This host's address on the route to ``address`` (a scheduler's ``tcp://host:port``)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def stop_orphans(where: list[str], address: Any) -> list[str]:
    """Take-up after a crash: stop the steps the dead server ran on Dask that still run.

    ``where``: the journal's "where" messages of the taken-up run (which worker and task
    ran each attempt). The workers' agents stop those steps themselves once the server's
    link is gone (SIGTERM, SIGKILL after ``TRAIL_DASK_ORPHAN_GRACE``); this makes sure,
    before the run is served, that none is left: a step the operator resumes never runs
    beside its old self. Returns the keys of the tasks that were found running and killed.
    """
    keys = sorted({match.group(1) for text in where
                   if (match := re.search(r"task (trail-step-[\w-]+)", str(text)))})
    if not keys or dask_missing():
        return []
    address = address if address is not None else os.environ.get(ADDRESS_VARIABLE)
    if not address:
        log.warning("take-up: steps ran on Dask but no scheduler address is set; cannot "
                    "check that tasks %s are gone", ", ".join(keys))
        return []
    from distributed import Client

    from trail.layer1.executors.dask.worker import stop_steps

    try:
        own = isinstance(address, str)
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False) if own \
            else address
        try:
            stopped = sorted({key for found in client.run(stop_steps, keys).values()
                              for key in found})
        finally:
            if own:
                client.close()
    except Exception as exc:  # the agents stop them anyway; say that we could not look
        log.warning("take-up: could not check on Dask tasks %s: %s", ", ".join(keys), exc)
        return []
    for key in stopped:
        log.warning("take-up: task %s of the crashed server still ran its step; killed it", key)
    return stopped
