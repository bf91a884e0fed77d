"""The wire: JSON requests and replies over ZeroMQ, and what each call accepts.

A request is one JSON object in one frame::

    {"v": 1, "id": 7, "call": "pause", "args": {"tags": {"name": "deploy"}, "dry_run": false}}

and its reply::

    {"v": 1, "id": 7, "ok": true, "result": [{"n": 3, "name": "deploy"}]}
    {"v": 1, "id": 7, "ok": false, "error": {"type": "ProtocolError", "message": "..."}}

``parse_request`` turns bytes into a checked Request or raises ProtocolError with a message
that says what is wrong and where; the server sends that back and keeps serving.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from trail.core.states import State
from trail.errors import ProtocolError
from trail.layer1 import values

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 1 << 20  # a request bigger than this is refused, not parsed


class Call(str, Enum):
    """Every call the API serves."""

    INFO = "info"
    GRAPH = "graph"
    START = "start"
    STOP = "stop"
    SHUTDOWN = "shutdown"
    LIST = "list"
    STATUS = "status"
    STEPS_WAITING_FOR_USER_INPUT = "steps_waiting_for_user_input"
    PAUSE = "pause"
    PAUSE_BRANCH = "pause_branch"
    INTERRUPT = "interrupt"
    RESUME = "resume"
    RESUME_BRANCH = "resume_branch"
    NEXT_STEP = "next_step"
    SKIP = "skip"
    UNSKIP = "unskip"
    BLOCK = "block"
    UNBLOCK = "unblock"
    RERUN = "rerun"
    SET_PAUSE_ON_FAIL = "set_pause_on_fail"
    UNSET_PAUSE_ON_FAIL = "unset_pause_on_fail"
    SEND_MESSAGE_TO_STEPS = "send_message_to_steps"

    def __str__(self) -> str:
        return self.value


class StatusField:
    """The keys of a status row (AutoTrail's strings), plus trail's own timing fields."""

    N = "n"
    NAME = "Name"
    TAGS = "Tags"
    STATE = "State"
    RETURN_VALUE = "Return value"
    OUTPUT_MESSAGES = "Output messages"
    INPUT_MESSAGES = "Input messages"
    PROMPT_MESSAGES = "Prompt messages"
    UNREPLIED_PROMPT_MESSAGE = "Waiting for response"
    STARTED_AT = "Started at"  # wall-clock seconds of the latest run's start, or None
    FINISHED_AT = "Finished at"  # ... and of its end, or None while it runs
    ATTEMPT = "Attempt"  # "2 of 4" for a step with retries, else None
    NEXT_RETRY_AT = "Next retry at"  # wall-clock seconds of the next retry, or None


STATUS_FIELDS = frozenset(
    value for key, value in vars(StatusField).items() if key.isupper() and isinstance(value, str)
)
DEFAULT_STATUS_FIELDS = (
    StatusField.STATE,
    StatusField.UNREPLIED_PROMPT_MESSAGE,
    StatusField.OUTPUT_MESSAGES,
    StatusField.RETURN_VALUE,
)
STATE_NAMES = frozenset(state.value for state in State)

Scalar = str | int | float | bool | None


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"argument {name!r} must be true or false, not {value!r}")
    return value


def _tags(name: str, value: Any) -> dict[str, Scalar]:
    if not isinstance(value, dict):
        raise ProtocolError(f"argument {name!r} must be an object of tag: value, not {value!r}")
    for key, tag in value.items():
        if not isinstance(tag, (str, int, float, bool)) and tag is not None:
            raise ProtocolError(f"tag {key!r} must be a string, number or boolean, not {tag!r}")
    return value


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"argument {name!r} must be a whole number >= 0, not {value!r}")
    return value


def _choices(allowed: frozenset[str]) -> Callable[[str, Any], list[str] | None]:
    def check(name: str, value: Any) -> list[str] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ProtocolError(f"argument {name!r} must be a list, not {value!r}")
        for item in value:
            if not isinstance(item, str) or item not in allowed:
                raise ProtocolError(
                    f"{item!r} in {name!r} is not one of: {', '.join(sorted(allowed))}"
                )
        return value

    return check


def _anything(name: str, value: Any) -> Any:
    return value


_Check = Callable[[str, Any], Any]
_REQUIRED = object()

_SELECT: dict[str, tuple[_Check, Any]] = {"tags": (_tags, {})}
_MUTATE: dict[str, tuple[_Check, Any]] = {**_SELECT, "dry_run": (_bool, True)}

ARGUMENTS: dict[Call, dict[str, tuple[_Check, Any]]] = {
    Call.INFO: {},
    Call.GRAPH: {},
    Call.START: {**_MUTATE, "dry_run": (_bool, False)},
    Call.STOP: _MUTATE,
    Call.SHUTDOWN: {"dry_run": (_bool, True)},
    Call.LIST: _SELECT,
    Call.STATUS: {
        **_SELECT,
        "fields": (_choices(STATUS_FIELDS), None),
        "states": (_choices(STATE_NAMES), None),
    },
    Call.STEPS_WAITING_FOR_USER_INPUT: _SELECT,
    Call.NEXT_STEP: {"step_count": (_count, 1), "dry_run": (_bool, True)},
    Call.SEND_MESSAGE_TO_STEPS: {**_MUTATE, "message": (_anything, _REQUIRED)},
    **{
        call: _MUTATE
        for call in (
            Call.PAUSE,
            Call.PAUSE_BRANCH,
            Call.INTERRUPT,
            Call.RESUME,
            Call.RESUME_BRANCH,
            Call.SKIP,
            Call.UNSKIP,
            Call.BLOCK,
            Call.UNBLOCK,
            Call.RERUN,
            Call.SET_PAUSE_ON_FAIL,
            Call.UNSET_PAUSE_ON_FAIL,
        )
    },
}


@dataclass(frozen=True)
class Request:
    call: Call
    args: dict[str, Any] = field(default_factory=dict)
    id: Any = None

    def to_json(self) -> bytes:
        return _dump({"v": PROTOCOL_VERSION, "id": self.id, "call": self.call.value,
                      "args": self.args})


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
        except ValueError as exc:
            raise ProtocolError(f"the server sent a reply that is not JSON: {exc}") from exc
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


def request_id(data: bytes) -> Any:
    """The id of a request, as far as it can be read (for error replies)."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body.get("id") if isinstance(body, dict) else None


def parse_request(data: bytes) -> Request:
    """Check a request's bytes and return it with every argument filled in.

    Raises ProtocolError naming the problem: too big, not JSON, not an object, another
    protocol version, an unknown call, an unknown, missing or ill-typed argument.
    """
    if len(data) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"the request is {len(data)} bytes; the limit is {MAX_REQUEST_BYTES}")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"the request is not valid JSON: {exc}") from None
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
    for arg, (check, default) in spec.items():
        if arg in raw:
            args[arg] = check(arg, raw[arg])
        elif default is _REQUIRED:
            raise ProtocolError(f"{call} needs the argument {arg!r}")
        else:
            args[arg] = default() if callable(default) else _copy(default)
    return Request(call, args, body.get("id"))


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def error_reply(request_id: Any, exc: BaseException) -> Reply:
    return Reply(request_id, False, error_type=type(exc).__name__, error_message=str(exc))
