"""The dask executor: each run a task on a Dask cluster, the step in a child process of the worker.

Dask cannot stop a running task, so the task never runs the step itself. It starts the step
in a child process of the worker, in a session (process group) of its own, and watches it:
an interrupt from the trail sends that group SIGTERM (the step's cleanup runs), a kill sends
SIGKILL, and nothing else on the worker is touched.

The task talks to the trail over one TCP connection back to this executor (``endpoint``),
opened with a per-executor secret: the step's output, prompts and outcome go up it, replies
and stop signals come down it. The trail's side of every connection is served by one thread
that hands Messages to the loop through a pipe, so they are delivered on the loop's thread.

What the connection guarantees:

* A run connects once. Should Dask start the same task again (its worker died), the second
  connection is refused and the step does not run: the run has already failed, naming the
  worker, and the trail decides about a retry.
* If the trail's server dies (even by SIGKILL), every connection closes, and each task stops
  its step (SIGTERM, SIGKILL after ``SERVER_LOST_GRACE``): the taken-up run finds the step
  Interrupted, and no step goes on unseen. A task that reaches a server that is gone or new
  never starts its step. On take-up, ``stop_orphans`` asks the workers for the tasks the
  journal names and kills any step still running, before the run is served.

Workers need trail installed and must be able to reach the trail's host. Functions go with
cloudpickle, checked at submission; on the worker the task forks the step's process from its
own thread (a fresh interpreter would cost every step its imports again).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import pickle
import queue
import re
import secrets
import select
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trail.layer1.executors.base import (
    Executor,
    Kind,
    Message,
    Outcome,
    StepChannel,
    TrailEnvironment,
    signal_groups,
)
from trail.layer1.executors.process import (
    PipeChannel,
    _die_with_parent,
    _write_all,
    describe_exit,
    frame,
    outcome_frame,
    read_available,
    unframe,
)

log = logging.getLogger(__name__)

ADDRESS_VARIABLE = "TRAIL_DASK_ADDRESS"
CALLBACK_VARIABLE = "TRAIL_DASK_CALLBACK_HOST"  # the host workers reach the trail on
# Seconds from SIGTERM to SIGKILL when the trail's server is gone (read on the worker).
SERVER_LOST_GRACE = float(os.environ.get("TRAIL_DASK_ORPHAN_GRACE", "2"))
CONNECT_TIMEOUT = 10.0
KEEPALIVE_AFTER = 10  # seconds of silence before the worker probes the trail's host
KEEPALIVE_EVERY = 5  # seconds between probes; 3 unanswered: the trail is gone


def dask_missing() -> str | None:
    """Why the dask executor cannot be used here, or None if it can."""
    import importlib.util

    for module in ("distributed", "cloudpickle"):
        if importlib.util.find_spec(module) is None:
            return (f"the dask executor needs the {module!r} package: "
                    f"pip install 'trail[dask]'")
    return None


def _send_all(sock: socket.socket, data: bytes, timeout: float = CONNECT_TIMEOUT) -> None:
    """Send all of ``data`` on a non-blocking socket, waiting for room up to ``timeout``
    seconds (the socket stays non-blocking: another thread may be reading it)."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        try:
            view = view[sock.send(view):]
        except (BlockingIOError, InterruptedError):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the other end does not read") from None
            select.select([], [sock], [], left)


def _recv_frames(sock: socket.socket, buffer: bytearray) -> tuple[list[bytes], bool]:
    """Read what is ready on a non-blocking socket; the whole frames and whether it closed."""
    closed = False
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buffer += chunk
    return unframe(buffer), closed


# --- the trail's side ---------------------------------------------------------------------


@dataclass
class _Run:
    run_id: int
    key: str = ""
    future: Any = None
    sock: socket.socket | None = None
    worker: str = ""
    buffer: bytearray = field(default_factory=bytearray)
    connected: bool = False  # a task connected for it (once; never again)
    ended: bool = False  # its EXIT was delivered
    interrupted: bool = False


class DaskExecutor(Executor):
    """Runs each step as a Dask task whose step runs in a child process of the worker.

    ``address``: the scheduler's address (``tcp://host:8786``), a ``distributed.Client``, or
    None for ``$TRAIL_DASK_ADDRESS``. Nothing connects until the first step starts.
    """

    name = "dask"

    def __init__(self, step_output: str | None = None, address: Any = None) -> None:
        missing = dask_missing()
        if missing:
            raise ValueError(missing)
        self.step_output = step_output  # steps print to their worker's log, not this file
        self._address = address if address is not None else os.environ.get(ADDRESS_VARIABLE)
        if not self._address:
            raise ValueError(f"the dask executor needs the scheduler's address: pass "
                             f"dask='tcp://host:8786' (--dask) or set ${ADDRESS_VARIABLE}")
        self._client: Any = None
        self._own_client = False
        self._runs: dict[int, _Run] = {}
        self._to_kill: dict[int, _Run] = {}  # interrupted, ended, their kill() still to come
        self._token = secrets.token_hex(32)
        self._prefix = f"trail-step-{uuid.uuid4().hex[:12]}"
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._lock = threading.Lock()  # guards _runs' sockets between the loop and the io thread
        # Made in bind and at the first step: an executor made only to check a name
        # (Run does) holds no descriptor.
        self._wake_r = self._wake_w = -1  # the io thread -> the loop
        self._poke_r = self._poke_w = -1  # anyone -> the io thread
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._done_futures: queue.Queue[int] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._connecting: threading.Thread | None = None
        self._ready = False  # the connection was tried (see _connect_error)
        self._connect_error = ""
        self._pending: list[tuple[_Run, bytes]] = []  # started before the connection was
        self._closing = False
        self.endpoint: tuple[str, int] | None = None

    # --- set-up ---

    @property
    def _sel(self) -> selectors.BaseSelector:
        assert self._selector is not None
        return self._selector

    def bind(self, deliver: Any, call_later: Any) -> None:
        super().bind(deliver, call_later)
        self._wake_r, self._wake_w = _pipe()
        self._poke_r, self._poke_w = _pipe()
        self._selector = selectors.DefaultSelector()
        self._sel.register(self._poke_r, selectors.EVENT_READ, "poke")
        self._connecting = threading.Thread(target=self._connect, name="trail-dask-connect",
                                            daemon=True)
        self._connecting.start()

    def watch(self) -> list[int]:
        return [self._wake_r] if self._wake_r >= 0 else []

    def _connect(self) -> None:
        """On a thread of its own (a scheduler that does not answer must not hold up the
        loop): reach the scheduler, listen for tasks, then submit what waited meanwhile."""
        try:
            from distributed import Client

            if isinstance(self._address, str):
                self._client = Client(self._address, timeout=CONNECT_TIMEOUT,
                                      set_as_default=False)
                self._own_client = True
            else:
                self._client = self._address
            scheduler = self._client.scheduler.address
            host = os.environ.get(CALLBACK_VARIABLE) or _host_towards(scheduler)
            listener = socket.create_server((host, 0), backlog=128)
            listener.setblocking(False)
            self._listener = listener
            self.endpoint = (host, listener.getsockname()[1])
            self._sel.register(listener, selectors.EVENT_READ, None)
            self._thread = threading.Thread(target=self._serve, name="trail-dask-io",
                                            daemon=True)
            self._thread.start()
            log.info("dask executor: scheduler %s, workers call back on %s:%s", scheduler,
                     *self.endpoint)
        except Exception as exc:  # the steps waiting for it fail, saying why
            where = self._address if isinstance(self._address, str) else "its client"
            self._connect_error = (f"cannot reach the Dask scheduler at {where}: "
                                   f"{type(exc).__name__}: {exc}")
            log.error("dask executor: %s", self._connect_error)
        with self._lock:
            self._ready = True
            pending, self._pending = self._pending, []
        for run, payload in pending:
            self._submit(run, payload)

    # --- the Executor interface ---

    def prepare(self, run_id: int) -> TrailEnvironment:
        self._runs[run_id] = _Run(run_id)
        return TrailEnvironment(_ManagerChannel(self, run_id))

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
        with self._lock:
            if not self._ready:
                self._pending.append((run, payload))
                return None
        self._submit(run, payload)
        return None

    def _submit(self, run: _Run, payload: bytes) -> None:
        if self._connect_error:
            self._refuse(run, ConnectionError(self._connect_error))
            return
        if run.interrupted:
            self._post(Message(run.run_id, Kind.EXIT, "was interrupted before it was submitted"))
            return
        assert self.endpoint is not None
        run.key = f"{self._prefix}-{run.run_id}"
        run.future = self._client.submit(_work, self.endpoint, self._token, run.run_id,
                                         payload, self.step_output is not None, run.key,
                                         key=run.key, pure=False, retries=0)
        run.future.add_done_callback(lambda _f, r=run.run_id: self._future_done(r))

    def _refuse(self, run: _Run, error: BaseException) -> None:
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
                if run is not None and run.interrupted and run.sock is not None:
                    # Its task still watches the group for stragglers: kill() reaches it.
                    self._to_kill[run.run_id] = run
            self._deliver(message)

    def _send(self, run: _Run, message: dict[str, Any]) -> None:
        with self._lock:
            sock = run.sock
            if sock is None:
                return
            try:
                _send_all(sock, frame(json.dumps(message).encode()))
            except OSError as exc:
                log.warning("run %s: could not reach its Dask task: %s", run.run_id, exc)

    def reply(self, run_id: int, message: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            self._send(run, {"reply": message})

    def interrupt(self, run_id: int) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        with self._lock:
            run.interrupted = True
            connected = run.connected
        if connected:
            self._send(run, {"signal": "term"})
        elif run.future is not None:
            run.future.cancel()

    def kill(self, run_id: int) -> None:
        run = self._runs.get(run_id) or self._to_kill.pop(run_id, None)
        if run is not None:
            self._send(run, {"signal": "kill"})

    def close(self, grace: float) -> None:
        if self._connecting is not None:
            self._connecting.join(CONNECT_TIMEOUT + 5)
        runs = list(self._runs.values())
        for run in runs:
            self.interrupt(run.run_id)
        for run_id in list(self._to_kill):
            self.kill(run_id)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(
                r.sock is not None for r in runs if r.connected):
            time.sleep(0.02)
        for run in runs:
            self.kill(run.run_id)
        self._closing = True
        _poke(self._poke_w)
        if self._thread is not None:
            self._thread.join(5)
        for run in runs:
            if run.sock is not None:
                run.sock.close()
        if self._listener is not None:
            self._listener.close()
        if self._own_client and self._client is not None:
            try:
                self._client.close(timeout=5)
            except Exception as exc:  # the cluster may be gone already
                log.warning("closing the Dask client: %s", exc)
        self._runs.clear()
        for fd in (self._poke_r, self._poke_w, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._poke_r = self._poke_w = self._wake_w = -1
        # _wake_r stays open: the loop may still have it registered.

    # --- the io thread ---

    def _future_done(self, run_id: int) -> None:  # on Dask's thread
        self._done_futures.put(run_id)
        _poke(self._poke_w)

    def _post(self, message: Message) -> None:
        self._inbox.put(message)
        _poke(self._wake_w)

    def _serve(self) -> None:
        while not self._closing:
            for key, _ in self._sel.select(timeout=1.0):
                if key.data == "poke":
                    try:
                        while os.read(self._poke_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif key.data is None:
                    self._accept()
                else:
                    self._read(key.data)
            self._settle_futures()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            self._sel.register(sock, selectors.EVENT_READ, _Pending(sock))

    def _read(self, owner: Any) -> None:
        frames, closed = _recv_frames(owner.sock, owner.buffer)
        if isinstance(owner, _Pending):
            if frames:
                self._hello(owner, frames[0])
            elif closed:
                self._sel.unregister(owner.sock)
                owner.sock.close()
            return
        run: _Run = owner
        for data in frames:
            self._from_task(run, data)
        if closed:
            self._lost(run)

    def _hello(self, pending: _Pending, data: bytes) -> None:
        sock = pending.sock
        self._sel.unregister(sock)
        try:
            hello = json.loads(data)
            token_ok = hmac.compare_digest(str(hello["token"]), self._token)
            run_id = int(hello["run"])
        except (ValueError, KeyError, TypeError):
            sock.close()
            return
        run = self._runs.get(run_id)
        # Decided and answered under the lock: an interrupt either comes before (the task
        # is refused) or after (it finds the socket to send SIGTERM down).
        with self._lock:
            why = ""
            if not token_ok:
                why = "wrong token"
            elif run is None or run.ended:
                why = "this run has ended"
            elif run.connected:
                why = "this run already ran once (Dask started its task again)"
            elif run.interrupted:
                why = "this run was interrupted before it started"
            else:
                run.connected = True  # once: never again for this run
                run.worker = str(hello.get("worker", "?"))
            try:
                _send_all(sock, frame(json.dumps({"go": not why, "why": why}).encode()))
            except OSError:
                why = why or "the task went away"
            if not why:
                assert run is not None
                run.sock = sock
        if why:
            log.warning("refused a Dask task for run %s: %s", run_id, why)
            sock.close()
            if run is not None and run.connected and run.sock is None:
                self._end(run, f"was lost with Dask worker {run.worker} as it started")
            return
        assert run is not None
        run.buffer = pending.buffer
        self._sel.register(sock, selectors.EVENT_READ, run)
        self._post(Message(run_id, Kind.WHERE,
                           f"running on Dask worker {run.worker} "
                           f"(host {hello.get('host', '?')}, task {run.key}, "
                           f"pid {hello.get('pid', '?')})"))
        for data in unframe(run.buffer):
            self._from_task(run, data)

    def _from_task(self, run: _Run, data: bytes) -> None:
        tag, body = data[:1], data[1:]
        if tag == b"P":
            self._printed(body)
        elif tag == b"M":
            kind, payload = pickle.loads(body)
            self._post(Message(run.run_id, kind, payload))
        elif tag == b"X":
            self._end(run, body.decode())

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

    def _end(self, run: _Run, how: str) -> None:
        if not run.ended:
            run.ended = True
            self._post(Message(run.run_id, Kind.EXIT, how))

    def _lost(self, run: _Run) -> None:
        with self._lock:
            sock, run.sock = run.sock, None
        if sock is not None:
            self._sel.unregister(sock)
            sock.close()
        self._end(run, f"was lost with Dask worker {run.worker} (its connection to the "
                       f"trail closed: the worker died or was killed)")

    def _settle_futures(self) -> None:
        """Tasks that ended without ever connecting: cancelled, refused or failed."""
        while True:
            try:
                run_id = self._done_futures.get_nowait()
            except queue.Empty:
                return
            run = self._runs.get(run_id)
            if run is None or run.connected or run.ended:
                continue
            self._accept()  # its hello may still wait in the backlog
            if run.connected:
                continue
            future = run.future
            if future.cancelled():
                how = "was cancelled before it started on Dask"
            elif future.status == "error":
                how = f"failed on Dask before it started: {future.exception()!r}"
            else:
                how = f"ended on Dask without running ({future.result()})"
            self._end(run, how)


@dataclass
class _Pending:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)


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


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    return read, write


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"x")
    except (BlockingIOError, OSError):
        pass


def _host_towards(address: str) -> str:
    """This host's address on the route to ``address`` (a scheduler's ``tcp://host:port``)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


# --- the worker's side --------------------------------------------------------------------


def _work(endpoint: tuple[str, int], token: str, run_id: int, payload: bytes,
          capture: bool = False, key: str = "") -> str:
    """The Dask task: connect to the trail, run the step in a child process, relay, watch."""
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "?"
    sock = socket.create_connection((str(endpoint[0]), int(endpoint[1])),
                                    timeout=CONNECT_TIMEOUT)
    sock.settimeout(CONNECT_TIMEOUT)
    _keep_alive(sock)
    hello = {"token": token, "run": run_id, "worker": worker, "host": socket.gethostname(),
             "pid": os.getpid()}
    sock.sendall(frame(json.dumps(hello).encode()))
    buffer = bytearray()
    answers: list[bytes] = []
    while not answers:
        chunk = sock.recv(1 << 16)
        if not chunk:
            sock.close()
            return "refused: the trail closed the connection"
        buffer += chunk
        answers = unframe(buffer)
    answer = json.loads(answers.pop(0))
    if not answer.get("go"):
        sock.close()
        return f"refused: {answer.get('why')}"
    try:
        watch = _Watch(sock, buffer, payload, capture)
        _RUNNING[key] = watch.groups  # for a taken-up run's stop_orphans
        return watch.run()
    finally:
        _RUNNING.pop(key, None)
        sock.close()


_RUNNING: dict[str, list[int]] = {}  # on a worker: task key -> its step's process groups


def _stop_steps(keys: list[str]) -> list[str]:
    """On a worker: SIGKILL the steps of these tasks still running here; the keys found."""
    found = [key for key in keys if key in _RUNNING]
    for key in found:
        signal_groups(_RUNNING[key], signal.SIGKILL)
    return found


def stop_orphans(where: list[str], address: Any) -> list[str]:
    """Take-up after a crash: stop the steps the dead server ran on Dask that still run.

    ``where``: the journal's "where" messages of the taken-up run (which worker and task
    ran each attempt). Their tasks stop their steps themselves once the server's connection
    is gone (SIGTERM, SIGKILL after ``SERVER_LOST_GRACE``); this makes sure, before the run
    is served, that none is left: a step the operator resumes never runs beside its old
    self. Returns the keys of the tasks that were found running and killed.
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

    try:
        own = isinstance(address, str)
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False) if own \
            else address
        try:
            stopped = sorted({key for found in client.run(_stop_steps, keys).values()
                              for key in found})
        finally:
            if own:
                client.close()
    except Exception as exc:  # the tasks stop themselves anyway; say that we could not look
        log.warning("take-up: could not check on Dask tasks %s: %s", ", ".join(keys), exc)
        return []
    for key in stopped:
        log.warning("take-up: task %s of the crashed server still ran its step; killed it", key)
    return stopped


def _keep_alive(sock: socket.socket) -> None:
    """A trail host that vanishes without closing the connection (power loss, a partition)
    is noticed within about KEEPALIVE_AFTER + 3 * KEEPALIVE_EVERY seconds, and its step
    stopped like that of a server that died."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_AFTER), ("TCP_KEEPINTVL", KEEPALIVE_EVERY),
                        ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class _Watch:
    """The task's watch over its step's child process."""

    def __init__(self, sock: socket.socket, buffer: bytearray, payload: bytes,
                 capture: bool) -> None:
        self.capture = capture  # send what the step prints to the trail
        self.sock = sock
        self.sock_buffer = buffer
        self.payload = payload
        self.groups: list[int] = []
        self.kill_at: float | None = None

    def run(self) -> str:
        import cloudpickle

        try:
            function, args, kwargs = cloudpickle.loads(self.payload)
        except Exception as exc:
            outcome = Outcome(False, exc, traceback.format_exc())
            self._up(b"M" + outcome_frame(outcome)[4:])
            self._up(b"X" + b"could not be loaded on the worker")
            return "could not load the step"
        out_r, out_w = os.pipe()
        in_r, stdin = os.pipe()
        print_r, print_w = os.pipe() if self.capture else (-1, -1)
        # Fork, not spawn: the function is loaded already, and a fresh interpreter would
        # cost the step its imports again. The child only runs the step and _exits.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(out_w, in_r, print_w, (out_r, stdin, print_r, self.sock.fileno()),
                   function, args, kwargs)
        os.close(out_w)
        os.close(in_r)
        self.prints: list[int] = []
        if print_r >= 0:
            os.close(print_w)
            os.set_blocking(print_r, False)
            self.prints.append(print_r)
        self.groups.append(pid)
        self.sock.setblocking(False)
        os.set_blocking(out_r, False)
        out_buffer = bytearray()
        watching: list[Any] = [self.sock, out_r, *self.prints]
        status: int | None = None
        server_gone = False
        while True:
            wait = 1.0 if self.kill_at is None else max(0.0, self.kill_at - time.monotonic())
            ready, _, _ = select.select(watching, [], [], min(wait, 1.0))
            if self.sock in ready:
                frames, closed = _recv_frames(self.sock, self.sock_buffer)
                for data in frames:
                    self._control(json.loads(data), stdin)
                if closed:
                    watching.remove(self.sock)
                    server_gone = True
                    self._term(SERVER_LOST_GRACE)
            if self.prints:
                self._forward_prints(watching, server_gone)
            if out_r in ready:
                eof = read_available(out_r, out_buffer)
                for data in unframe(out_buffer):
                    if data[:1] == b"G":
                        self.groups.append(int(data[1:]))
                    elif not server_gone:
                        self._up(data)
                if eof:
                    watching.remove(out_r)
                    os.close(out_r)
            if status is None and out_r not in watching:
                status = os.waitpid(pid, 0)[1]
                if not server_gone:
                    self._up(b"X" + describe_exit(status).encode())
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                signal_groups(self.groups, signal.SIGKILL)
                self.kill_at = None
                if status is not None:
                    break
            if status is not None and (self.kill_at is None or not _alive(self.groups)):
                break
        os.close(stdin)
        return describe_exit(status)

    def _forward_prints(self, watching: list[Any], server_gone: bool) -> None:
        """Send what the step printed so far (before any frame read after it: a step's
        prints reach the trail before its result)."""
        fd = self.prints[0]
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                watching.remove(fd)
                self.prints.clear()
                os.close(fd)
                return
            if not server_gone:
                self._up(b"P" + chunk)

    def _up(self, data: bytes) -> None:
        try:
            _send_all(self.sock, frame(data))
        except OSError:
            pass

    def _term(self, grace: float) -> None:
        signal_groups(self.groups, signal.SIGTERM)
        if self.kill_at is None:
            self.kill_at = time.monotonic() + grace

    def _control(self, message: dict[str, Any], stdin: int) -> None:
        if "reply" in message:
            try:
                _write_all(stdin, frame(json.dumps(message["reply"]).encode()))
            except OSError:
                pass
        elif message.get("signal") == "term":
            self._term(SERVER_LOST_GRACE * 5)  # the trail sends "kill" after its grace
        elif message.get("signal") == "kill":
            signal_groups(self.groups, signal.SIGKILL)
            self.kill_at = None


def _alive(groups: list[int]) -> bool:
    for pgid in groups:
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


# --- the step's child process -------------------------------------------------------------


class _ChildChannel(PipeChannel):
    """The child's end: frames tagged M (a message for the trail) or G (a process group
    the watching task stops with the step, on the worker's host)."""

    def send(self, kind: str, payload: Any) -> None:
        if kind == Kind.GROUP:
            _write_all(self._out, frame(b"G" + str(int(payload)).encode()))
        else:
            _write_all(self._out, frame(b"M" + pickle.dumps((kind, payload))))


def _child(out_fd: int, in_fd: int, print_fd: int, others: tuple[int, ...],
           function: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> None:
    """The step's process (forked from the task's thread): never returns."""
    code = 0
    try:
        os.setsid()
        _die_with_parent()  # the task's thread waits for it, so this is the worker's death
        for fd in others:
            if fd >= 0:
                os.close(fd)
        if print_fd >= 0:
            os.dup2(print_fd, 1)
            os.dup2(print_fd, 2)
            os.close(print_fd)
            sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        # As in any Python program: a write to a closed pipe raises BrokenPipeError.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        channel = _ChildChannel(out_fd, in_fd)
        if args and isinstance(args[0], TrailEnvironment):
            args = (TrailEnvironment(channel), *args[1:])
        kwargs = {k: TrailEnvironment(channel) if isinstance(v, TrailEnvironment) else v
                  for k, v in kwargs.items()}
        try:
            outcome = Outcome(True, function(*args, **kwargs))
        except BaseException as exc:  # the step's failure is reported, whatever it was
            outcome = Outcome(False, exc, traceback.format_exc())
        sys.stdout.flush()
        sys.stderr.flush()
        _write_all(out_fd, frame(b"M" + outcome_frame(outcome)[4:]))
    except BaseException:  # noqa: B036 - the child must reach os._exit, always
        code = 70
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
