"""The wire: JSON requests and replies, checked against the table of calls.

A request is one JSON object in one frame::

    {"v": 1, "id": 7, "call": "pause", "args": {"tags": {"name": "deploy"}, "dry_run": false}}

and its reply::

    {"v": 1, "id": 7, "ok": true, "result": [{"n": 3, "name": "deploy"}]}
    {"v": 1, "id": 7, "ok": false, "error": {"type": "ProtocolError", "message": "..."}}

``parse_request`` turns bytes into a checked Request (the arguments each call accepts are
in ``trail.layer1.calls``) or raises ProtocolError with a message that says what is wrong
and where; the server sends that back and keeps serving.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trail.errors import ProtocolError
from trail.layer1 import values
from trail.layer1.calls import (
    CALLS,
    DEFAULT_STATUS_FIELDS,
    STATE_NAMES,
    STATUS_FIELDS,
    Argument,
    Call,
    StatusField,
)

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 1 << 20  # a request bigger than this is refused, not parsed
# Containers inside containers a request may hold: a value trail can show (values.MAX_DEPTH)
# inside the request's object and its "args".
MAX_NESTING = values.MAX_DEPTH + 2

# What each call accepts, by call, as the table says (the fuzz tests read it).
ARGUMENTS: dict[Call, dict[str, Argument]] = {
    Call(spec.name): spec.wire_arguments for spec in CALLS.values()
}


@dataclass(frozen=True)
class Request:
    call: Call
    args: dict[str, Any] = field(default_factory=dict)
    id: Any = None
    by: str | None = None  # who asks ("web:alice"): journaled with the changes it makes

    def to_json(self) -> bytes:
        return request_bytes(self.call.value, self.args, self.id, self.by)


MAX_BY = 80


def request_bytes(call: str, args: Mapping[str, Any], id: Any,  # noqa: A002
                  by: str | None = None) -> bytes:
    """A request as it travels; the name is not checked here (the server checks it)."""
    body = {"v": PROTOCOL_VERSION, "id": id, "call": call, "args": args}
    if by is not None:
        body["by"] = by
    return _dump(body)


class Encoded(bytes):
    """A result already encoded as JSON: the reply carries it as it is."""


@dataclass(frozen=True)
class Reply:
    id: Any
    ok: bool
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None

    def to_json(self) -> bytes:
        if self.ok and isinstance(self.result, Encoded):
            head = _dump({"v": PROTOCOL_VERSION, "id": self.id, "ok": True})
            return head[:-1] + b',"result":' + self.result + b"}"
        body: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": self.id, "ok": self.ok}
        if self.ok:
            body["result"] = self.result
        else:
            body["error"] = {"type": self.error_type, "message": self.error_message}
        return _dump(body)

    @classmethod
    def from_json(cls, data: bytes) -> Reply:
        try:
            body = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"the server sent a reply that is not JSON: {exc}") from None
        if not isinstance(body, dict) or "ok" not in body:
            raise ProtocolError(f"the server sent a reply trail does not understand: {body!r}")
        if body.get("v") != PROTOCOL_VERSION:
            raise ProtocolError(
                f"the server speaks trail protocol {body.get('v')!r}, "
                f"this client speaks {PROTOCOL_VERSION}"
            )
        error = body.get("error") or {}
        return cls(body.get("id"), bool(body["ok"]), body.get("result"),
                   error.get("type"), error.get("message"))


def _dump(body: Mapping[str, Any]) -> bytes:
    # A tag or return value that JSON cannot hold travels as trail shows it everywhere.
    return values.dumps(body).encode()


def _load(data: bytes, what: str) -> Any:
    """JSON bytes as Python, or ProtocolError: not JSON, or nested too deep for anything
    trail keeps (JSON's own reader gives up near 1,000 levels with a RecursionError)."""
    try:
        body = json.loads(data)
    except RecursionError:
        raise ProtocolError(f"the {what} is nested more than {MAX_NESTING} deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"the {what} is not valid JSON: {exc}") from None
    if _too_deep(body, MAX_NESTING):
        raise ProtocolError(f"the {what} is nested more than {MAX_NESTING} deep")
    return body


def _too_deep(value: Any, limit: int) -> bool:
    """Containers nest more than ``limit`` deep (iterative: no recursion to exhaust)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def request_id(data: bytes) -> Any:
    """The id of a request, as far as it can be read (for error replies); never raises."""
    if len(data) > MAX_REQUEST_BYTES:
        return None
    try:
        body = _load(data, "request")
    except Exception:
        return None
    return body.get("id") if isinstance(body, dict) else None


def parse_request(data: bytes) -> Request:
    """Check a request's bytes and return it with every argument filled in.

    Raises ProtocolError naming the problem: too big, not JSON, nested deeper than
    ``MAX_NESTING``, not an object, another
    protocol version, an unknown call, an unknown, missing or ill-typed argument.
    """
    if len(data) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"the request is {len(data)} bytes; the limit is {MAX_REQUEST_BYTES}")
    body = _load(data, "request")
    if not isinstance(body, dict):
        raise ProtocolError(f"the request must be a JSON object, not {type(body).__name__}")
    version = body.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"this server speaks trail protocol {PROTOCOL_VERSION}, the request is {version!r}"
        )
    name = body.get("call")
    try:
        call = Call(name)
    except ValueError:
        raise ProtocolError(f"unknown call {name!r}") from None
    raw = body.get("args", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ProtocolError(f"'args' of {call} must be an object, not {type(raw).__name__}")
    spec = ARGUMENTS[call]
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        raise ProtocolError(f"{call} takes no argument {unknown[0]!r} "
                            f"(it takes: {', '.join(spec) or 'none'})")
    args = {}
    for name, argument in spec.items():
        if name in raw:
            args[name] = argument.check(name, raw[name])
        elif argument.required:
            raise ProtocolError(f"{call} needs the argument {name!r}")
        else:
            args[name] = _copy(argument.default)
    by = body.get("by")
    if by is not None and (not isinstance(by, str) or not by.isprintable()
                           or not 0 < len(by) <= MAX_BY):
        raise ProtocolError(f"'by' must be a short line of text (at most {MAX_BY} "
                            f"characters), not {by!r}")
    return Request(call, args, body.get("id"), by)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def error_reply(request_id: Any, exc: BaseException) -> Reply:
    return Reply(request_id, False, error_type=type(exc).__name__, error_message=str(exc))


__all__ = [
    "ARGUMENTS",
    "DEFAULT_STATUS_FIELDS",
    "MAX_NESTING",
    "MAX_REQUEST_BYTES",
    "PROTOCOL_VERSION",
    "STATE_NAMES",
    "STATUS_FIELDS",
    "Call",
    "Encoded",
    "ProtocolError",
    "Reply",
    "Request",
    "StatusField",
    "error_reply",
    "parse_request",
    "request_bytes",
    "request_id",
]
