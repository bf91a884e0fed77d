"""TrailClient: every API call as a method, with AutoTrail's names, arguments and results.

The methods are generated from the table of calls (``trail.layer1.calls``) by
``add_call_methods``: each has the call's signature, name and summary, so ``help()``,
``inspect.signature`` and a REPL's completion see them as if written out, and a new call in
the table is a new method here without an edit.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from trail.errors import ProtocolError, TrailClientError
from trail.layer1.calls import SPECS, CallSpec
from trail.layer1.sockets import events_file
from trail.layer1.transport import Transport, ZmqTransport
from trail.layer1.wire import Reply, request_bytes

if TYPE_CHECKING:
    from trail.layer2.stream import EventStream

Steps = list[dict[str, Any]]


class TrailClient:
    """Steers the trail served at ``socket_file``.

    Each call waits up to ``timeout`` seconds for the server and raises TrailConnectionError,
    naming the socket, when none answers (AutoTrail returned None); a call the server
    refuses raises TrailClientError with the server's message. Mutating calls default to
    ``dry_run=True``: they say which steps would change and change nothing. Safe to share
    between threads.

    ``by`` names who is asking (``web:alice``): the journal records it with every change
    the calls make, and ``trail history`` shows it. ``transport`` replaces the ZeroMQ
    socket (an ``InProcessTransport`` in tests); then ``socket_file`` is only a label,
    and ``subscribe`` is not available without a server. ``wait_while``: while it returns
    True a silent server is waited for past ``timeout`` (``TrailServer.alive`` for a server
    in this process: busy, not gone).
    """

    def __init__(self, socket_file: str, timeout: float = 5.0, *,
                 transport: Transport | None = None, by: str | None = None,
                 wait_while: Callable[[], bool] | None = None) -> None:
        if transport is None:
            transport = ZmqTransport(socket_file, timeout, wait_while)
            socket_file = transport.socket_file
        self.socket_file = socket_file
        self.timeout = timeout
        self.by = by  # who is asking: the server journals it with what the calls change
        self.transport = transport
        self._ids = itertools.count(1)

    def call(self, call: str, **args: Any) -> Any:
        """Send one request and return its result (every call method comes here)."""
        request_id = next(self._ids)
        reply = Reply.from_json(self.transport.request(request_bytes(str(call), args,
                                                                     request_id, self.by)))
        # The transport pairs replies with requests; an id of None answers one unreadable.
        if reply.id is not None and reply.id != request_id:
            raise ProtocolError(f"the server answered request {reply.id!r} to {request_id!r}")
        if not reply.ok:
            raise TrailClientError(reply.error_message or "the server refused the call",
                                   reply.error_type or "TrailError")
        return reply.result

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> TrailClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def subscribe(self) -> EventStream:
        """Subscribe to the server's events; returns once the subscription is in place.

        Everything that happens after this returns is in the stream: subscribe, then read
        ``status()`` for the state before, then act.
        """
        from trail.layer2.stream import EventStream  # a command that only calls needs none

        return EventStream(events_file(self.socket_file), self.timeout)

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        """Wait until the trail has finished (every step succeeded, was skipped or failed
        for good; see README "When a run ends") and return its steps per state.

        A trail that waits on an operator (a blocked or paused step, a question) has not
        finished: ``wait`` keeps waiting. Raises TimeoutError after ``timeout`` seconds,
        and TrailConnectionError if the server goes away first.
        """
        from trail.layer1.events import Finished

        deadline = None if timeout is None else time.monotonic() + timeout
        with self.subscribe() as stream:
            quiet = True  # ask the server: at first (a finish after that is in the stream),
            while True:   # and after a quiet second (is it still there?)
                if quiet:
                    info = self.info()
                    if info["finished"]:
                        return dict(info["counts"])
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the trail at {self.socket_file} has not finished "
                                       f"within {timeout:g} s")
                event = stream.next(1.0 if left is None else min(1.0, left))
                if isinstance(event, Finished):
                    return dict(event.counts)
                quiet = event is None

    if TYPE_CHECKING:
        # The call methods are generated below; to a type checker each is a callable.
        def __getattr__(self, name: str) -> Callable[..., Any]: ...


def signature(spec: CallSpec, first: str = "self") -> inspect.Signature:
    """A call's Python signature: its arguments, then ``dry_run`` if it mutates, then
    ``**tags`` if it selects steps, as AutoTrail has them."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(first, kind)]
    parameters += [inspect.Parameter(argument.name, kind, default=argument.default)
                   if not argument.required else inspect.Parameter(argument.name, kind)
                   for argument in spec.parameters]
    if spec.selects:
        parameters.append(inspect.Parameter("tags", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(parameters)


def wire_arguments(spec: CallSpec, bound: inspect.BoundArguments) -> dict[str, Any]:
    """A call's arguments as a request carries them (tags as one object), defaults filled."""
    bound.apply_defaults()
    args = dict(bound.arguments)
    del args[next(iter(args))]  # self
    if spec.selects:
        args["tags"] = args.pop("tags", {})
    return args


def docstring(spec: CallSpec) -> str:
    """The summary, then the example on the command line."""
    return f"{spec.summary}\n\nOn the command line: {spec.example}"


def add_call_methods(cls: type[TrailClient], specs: Iterable[CallSpec]) -> None:
    """Give ``cls`` a method per call in ``specs``; a name ``cls`` already has is an error."""
    for spec in specs:
        if hasattr(cls, spec.name):
            raise TypeError(f"{cls.__name__} already has an attribute {spec.name!r}")
        setattr(cls, spec.name, _method(spec, cls.__name__))


def _method(spec: CallSpec, owner: str) -> Callable[..., Any]:
    shape = signature(spec)

    def method(self: TrailClient, *args: Any, **kwargs: Any) -> Any:
        return self.call(spec.name, **wire_arguments(spec, shape.bind(self, *args, **kwargs)))

    return dress(method, spec, owner, docstring(spec))


F = TypeVar("F", bound=Callable[..., Any])


def dress(method: F, spec: CallSpec, owner: str, doc: str) -> F:
    """Give a generated method the call's name, signature and ``doc``, as if written out."""
    method.__name__ = spec.name
    method.__qualname__ = f"{owner}.{spec.name}"
    method.__doc__ = doc
    method.__signature__ = signature(spec)  # type: ignore[attr-defined]
    return method


add_call_methods(TrailClient, SPECS)
