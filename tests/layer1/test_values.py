"""The one codec for values: what each kind of value shows as, and that the journal gives
back exactly what was shown."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import pickle
import sys
import threading
from pathlib import Path, PurePosixPath

import pytest

from trail.errors import RemoteStepError
from trail.layer1 import values
from trail.layer1.events import StateChanged
from trail.layer1.executors.base import Kind, Outcome
from trail.layer1.executors.process import outcome_frame
from trail.layer1.journal import Journal
from trail.layer1.wire import Reply


class Colour(enum.Enum):
    RED = "red"
    DEEP = (1, 2)


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Host:
    name: str
    seen: datetime.date
    ports: tuple[int, ...] = (22,)


class Odd:
    def __str__(self) -> str:
        return "an odd thing"


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no")


CASES = [
    ("text", "text"),
    (7, 7),
    (1.5, 1.5),
    (True, True),
    (None, None),
    ([1, "a", None], [1, "a", None]),
    ({"a": {"b": [1]}}, {"a": {"b": [1]}}),
    ((1, (2, 3)), [1, [2, 3]]),
    ({3, 1, 2}, [1, 2, 3]),
    (frozenset({"b", "a"}), ["a", "b"]),
    ({1, "a", None}, ["a", 1, None]),  # no order among them: by JSON text, '"a"' < "1" < "null"
    (float("nan"), "nan"),
    (float("-inf"), "-inf"),
    (datetime.date(2024, 1, 2), "2024-01-02"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
    (datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone.utc),
     "2024-01-02T03:04:00+00:00"),
    (datetime.time(3, 4), "03:04:00"),
    (decimal.Decimal("1.10"), "1.10"),
    (decimal.Decimal("1E+3"), "1E+3"),
    (b"caf\xc3\xa9", "café"),
    (b"\xff!", "\\xff!"),
    (bytearray(b"ok"), "ok"),
    (Path("/etc/hosts"), "/etc/hosts"),
    (PurePosixPath("a/b"), "a/b"),
    (Colour.RED, "red"),
    (Colour.DEEP, [1, 2]),
    (Level.HIGH, 3),
    (Host("db1", datetime.date(2024, 1, 2)), {"name": "db1", "seen": "2024-01-02",
                                              "ports": [22]}),
    ({1: "a", None: "b", (1, 2): "c", datetime.date(2024, 1, 2): "d"},
     {"1": "a", "null": "b", "[1, 2]": "c", "2024-01-02": "d"}),
    (ValueError("bad input"), "ValueError: bad input"),
    (KeyError("k"), "KeyError: 'k'"),
    (RemoteStepError("LocalError", "the disk is full"), "LocalError: the disk is full"),
    (Odd(), "an odd thing"),
    (Unprintable(), "<Unprintable whose str() raised ValueError>"),
    (Host, str(Host)),  # a dataclass's class is not an instance of it
]


@pytest.mark.parametrize(("value", "expected"), CASES, ids=[repr(c[1])[:30] for c in CASES])
def test_each_kind_of_value_is_shown_as_documented(value, expected):
    assert values.shown(value) == expected


@pytest.mark.parametrize(("value", "expected"), CASES, ids=[repr(c[1])[:30] for c in CASES])
def test_the_journal_gives_back_what_was_shown(value, expected):
    shown = values.shown(value)
    assert values.decode(values.encode(value)) == shown
    assert values.shown(shown) == shown  # nothing drifts on a second way round
    json.loads(values.dumps(value))  # strict JSON: no NaN or Infinity


def test_the_journal_file_gives_back_what_was_shown(tmp_path):
    book = Journal(tmp_path / "j.sqlite3")
    cases = dict(enumerate(CASES))
    run = book.new_run("values", {"steps": [], "edges": []},
                       [(n, f"s{n}", "Ready", False) for n in cases], None)
    for n, (value, _) in cases.items():
        book.step(run, n, state="Succeeded", attempt=1, pause_on_fail=False,
                  return_value=value, started_at=None, finished_at=None)
        book.message(run, n, 1, "output", value)
    book.commit()
    saved = book.saved_steps(run)
    book.close()
    for n, (_, expected) in cases.items():
        assert saved[n].return_value == expected
        assert saved[n].output == [expected]


def test_older_journal_rows_read_as_shown():
    assert values.decode('"datetime.date(2024, 1, 2)"') == "datetime.date(2024, 1, 2)"
    assert values.decode("NaN") == "nan"  # json.dumps wrote NaN for a float nan
    assert values.decode('{"a": [1, 2]}') == {"a": [1, 2]}


def test_a_recursive_list_shows_as_text_with_a_note():
    loop: list = [1]
    loop.append(loop)
    shown = values.shown(loop)
    assert shown == "[1, [1, [1, [1, [...]]]]] (trail shows this as text: it contains itself)"
    assert values.decode(values.encode(loop)) == shown


def test_a_recursive_dict_inside_a_value_shows_it_all_as_text():
    mapping: dict = {}
    mapping["self"] = mapping
    shown = values.shown({"outer": mapping})
    assert isinstance(shown, str) and shown.endswith("(trail shows this as text: it "
                                                     "contains itself)")


def test_the_same_value_twice_is_no_recursion():
    shared = [1, 2]
    assert values.shown([shared, shared, (shared,)]) == [[1, 2], [1, 2], [[1, 2]]]


def test_ten_thousand_deep_nesting_does_not_raise():
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    shown = values.shown(deep)
    assert shown == (f"[[[[[...]]]]] (trail shows this as text: it is nested more than "
                     f"{values.MAX_DEPTH} deep)")
    assert values.decode(values.encode(deep)) == shown
    nested: dict = {}
    for _ in range(10_000):
        nested = {"k": nested}
    assert isinstance(values.shown(nested), str)


def test_nesting_up_to_the_limit_is_shown_whole():
    deep: list = []
    for _ in range(values.MAX_DEPTH - 1):
        deep = [deep]
    assert values.shown(deep) == deep


def test_a_str_that_recurses_does_not_escape():
    class Recurses:
        def __str__(self) -> str:
            return str(self)

    assert "recursed too deep" in values.shown(Recurses())


def test_an_int_too_long_for_text_shows_as_hex():
    huge = 1 << 20_000  # about 6,000 digits; Python writes 4,300 unless told otherwise
    if not 0 < getattr(sys, "get_int_max_str_digits", lambda: 0)() < 6_000:
        pytest.skip("this Python writes an int of any length")
    assert values.shown(huge) == hex(huge)
    assert values.shown([huge]) == [hex(huge)]
    json.loads(values.dumps({"n": huge}))
    assert values.shown(1 << 100) == 1 << 100


def test_subclasses_of_json_types_show_as_the_plain_type():
    class Name(str):
        def __str__(self) -> str:
            return "not this"

    class Count(int):
        pass

    shown = values.shown([Name("db1"), Count(3)])
    assert shown == ["db1", 3]
    assert [type(item) for item in shown] == [str, int]


def test_an_unpicklable_return_value_crosses_as_shown():
    value = {"lock": threading.Lock(), "when": datetime.date(2024, 1, 2)}
    kind, outcome = pickle.loads(outcome_frame(Outcome(True, value))[4:])
    assert kind == Kind.RESULT
    assert outcome.value == values.shown(value)
    assert outcome.value["when"] == "2024-01-02"


def test_an_unpicklable_exception_shows_as_the_original():
    class LocalError(Exception):
        pass

    error = LocalError("the disk is full")
    _, outcome = pickle.loads(outcome_frame(Outcome(False, error, "trace"))[4:])
    assert isinstance(outcome.value, RemoteStepError)
    assert values.shown(outcome.value) == values.shown(error) == "LocalError: the disk is full"


def test_replies_and_events_carry_values_as_shown():
    reply = json.loads(Reply(1, True, {"when": datetime.date(2024, 1, 2), 1: {3, 1}}).to_json())
    assert reply["result"] == {"when": "2024-01-02", "1": [1, 3]}
    event = StateChanged(n=1, name="a", state="Succeeded", return_value=decimal.Decimal("1.10"))
    assert json.loads(event.to_json())["return_value"] == "1.10"
