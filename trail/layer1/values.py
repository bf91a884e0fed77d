"""The one codec for values: how a return value, message or tag is shown, live and after recovery.

Whatever leaves the server's process (status rows, events, replies, the journal, the DAG
file) goes through ``shown``, so a value reads the same wherever it is read: live, from the
journal's history, and after a killed server's run is taken up again. The journal stores the
shown form (``encode``) and recovery gives it back (``decode``) as the step's return value;
``shown`` of a shown value is that value, so nothing drifts on the way round. The live
record keeps the Python value for the step's own post-processing; after recovery a step's
return value is its shown form (its post-processing ran when it returned).

What a value shows as (recursively inside lists and dicts):

========================  ===================================================
JSON's own values         themselves (a str, int or float subclass as the plain
                          type; a float that is not finite as ``"nan"``,
                          ``"inf"`` or ``"-inf"``: JSON cannot hold it)
list, tuple               a list
set, frozenset            a list, sorted (by the JSON text of each element
                          when the elements cannot be compared)
dict, any Mapping         a dict; a key that is not text becomes the JSON
                          text of its shown form (``1`` -> ``"1"``,
                          ``None`` -> ``"null"``, ``(1, 2)`` -> ``"[1, 2]"``)
date, datetime, time      ISO 8601 text (``"2024-01-02"``)
Decimal                   its text, exactly (``"1.10"``)
bytes, bytearray          their UTF-8 text, undecodable bytes as ``\\xNN``
PurePath                  its text
an int too long for text  its hex text (past ``sys.get_int_max_str_digits``)
Enum member               its value, shown (as JSON shows an IntEnum)
dataclass instance        a dict of its fields, shown
RemoteStepError           its text, ``Type: message`` of the original exception
other exceptions          ``Type: message``
anything else             its ``str``
========================  ===================================================

A value that cannot be shown whole, because it contains itself or is nested deeper than
MAX_DEPTH, shows as its abbreviated text followed by a note saying why; ``shown`` never
raises for any value (a ``__str__`` that raises gives a placeholder).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import logging
import math
import reprlib
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from trail.errors import RemoteStepError

log = logging.getLogger(__name__)

MAX_DEPTH = 100  # containers inside containers; JSON encoders and readers nest far less deep

_PLAIN = (str, bool, type(None))  # exact types that are shown as themselves
_LONG_INT_BITS = 10_000  # beyond this an int may pass Python's limit on decimal digits
_abbreviated = reprlib.Repr()
_abbreviated.maxlevel = 4
_abbreviated.maxstring = _abbreviated.maxother = 200


class _Unshowable(Exception):
    """Raised inside the walk when a value cannot be shown whole; ``shown`` catches it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def shown(value: Any) -> Any:
    """The value as trail shows it everywhere: a JSON value (see the module's table).

    Never raises: a value that contains itself or is nested too deep becomes its
    abbreviated text with a note, so one odd return value cannot stop the server.
    """
    if type(value) in _PLAIN:
        return value
    try:
        return _shown(value, 0, set())
    except _Unshowable as exc:
        why = exc.why
    except RecursionError:  # a __str__ or __eq__ of the value's own that recurses
        why = "showing it recursed too deep"
    try:
        text = _abbreviated.repr(value)
    except Exception as exc:  # the value's own __repr__ failed, or recursed
        text = f"<{type(value).__name__} that cannot be shown: {type(exc).__name__}>"
    log.warning("a %s value is shown as text: %s", type(value).__name__, why)
    return f"{text} (trail shows this as text: {why})"


MAX_MESSAGE_CHARS = 64 * 1024  # one output message; longer ones keep their head and a note


def clipped(message: Any, limit: int = MAX_MESSAGE_CHARS) -> Any:
    """A shown message no longer than ``limit`` characters (as text, or as JSON for other
    values): a longer one keeps its first ``limit`` characters and says how many it lost."""
    if isinstance(message, str):
        if len(message) <= limit:
            return message
        text = message
    elif type(message) in _PLAIN or isinstance(message, (int, float)):
        return message
    else:
        text = dumps(message)
        if len(text) <= limit:
            return message
    return (f"{text[:limit]} [trail] ... truncated: {len(text) - limit} more characters "
            f"not kept")


def dumps(value: Any) -> str:
    """The JSON text of ``shown(value)``: what the wire, the events and the journal carry.

    JSON's own encoder writes what it can hold as ``shown`` would (lists, text keys for
    numbers and null), and hands every other value to ``shown``; only what it refuses (a
    NaN, a tuple as a key, a cycle, a huge int, deep nesting) takes the slower full walk.
    """
    if value is None:  # most return values
        return "null"
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        return _PLAIN_ENCODER.encode(shown(value))


# One encoder each, made once (json.dumps with options makes one per call): a run of
# 100,000 steps encodes several values per step. Encoding keeps no state between calls.
_ENCODER = json.JSONEncoder(default=shown, separators=(",", ":"), allow_nan=False)
_PLAIN_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode(value: Any) -> str:
    """A value as the journal stores it: the JSON text of its shown form."""
    return dumps(value)


def decode(text: str) -> Any:
    """A value the journal stored, as it was shown when stored.

    Also reads what older trails stored (a value as JSON, or the JSON of its repr): those
    come back as they were stored, shown.
    """
    return shown(json.loads(text))


def _shown(value: Any, depth: int, inside: set[int]) -> Any:
    """``shown`` of ``value`` at ``depth`` containers down; ``inside`` holds the ids of the
    containers on the way here (a value among them contains itself)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is int:
        return _int(value)
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, enum.Enum):  # before int and str: IntEnum and StrEnum are both
        return _shown(value.value, depth, inside)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):  # bool is exact, handled above
        return _int(int.__int__(value))
    if isinstance(value, (list, tuple, set, frozenset, Mapping)) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return _container(value, depth, inside)
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, RemoteStepError):
        return _text(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {_text(value)}"
    return _text(value)


def _container(value: Any, depth: int, inside: set[int]) -> Any:
    if id(value) in inside:
        raise _Unshowable("it contains itself")
    if depth >= MAX_DEPTH:
        raise _Unshowable(f"it is nested more than {MAX_DEPTH} deep")
    inside.add(id(value))
    try:
        below = depth + 1
        if isinstance(value, (list, tuple)):
            return [_shown(item, below, inside) for item in value]
        if isinstance(value, (set, frozenset)):
            return _set(value, below, inside)
        if isinstance(value, Mapping):
            return {_key(key, below, inside): _shown(item, below, inside)
                    for key, item in value.items()}
        return {field.name: _shown(getattr(value, field.name), below, inside)
                for field in dataclasses.fields(value)}
    finally:
        inside.discard(id(value))


def _set(value: set[Any] | frozenset[Any], depth: int, inside: set[int]) -> list[Any]:
    """A set as a sorted list: by its elements where they compare, else by their JSON text,
    so the same set always shows in the same order."""
    try:
        ordered = sorted(value)
    except Exception:  # elements that do not compare (or whose __lt__ fails): order below
        items = [_shown(item, depth, inside) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return [_shown(item, depth, inside) for item in ordered]


def _key(key: Any, depth: int, inside: set[int]) -> str:
    """A dict key as text: itself if text, else the JSON of its shown form (as JSON turns
    ``1`` into ``"1"`` and ``None`` into ``"null"``)."""
    key = _shown(key, depth, inside)
    return key if isinstance(key, str) else json.dumps(key)


def _int(value: int) -> int | str:
    """An int, or its hex text when it has more decimal digits than Python will write
    (``sys.get_int_max_str_digits``), which JSON would fail on."""
    if value.bit_length() > _LONG_INT_BITS:
        try:
            str(value)
        except ValueError:
            return hex(value)
    return value


def _text(value: Any) -> str:
    """``str(value)``, or a placeholder naming its type when its ``__str__`` fails."""
    try:
        return str(value)
    except RecursionError:
        raise
    except Exception as exc:
        return f"<{type(value).__name__} whose str() raised {type(exc).__name__}>"
