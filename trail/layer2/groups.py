"""A big run at a glance: steps grouped by state and by a tag, for the live view.

A runbook over a fleet has a step per host per phase (``drain@web17``, tagged
``host=web17``): 10,000 rows nobody can read. ``arrange`` lays such a run out as a person
reads it: first the steps that need them (a question waiting for an answer, a failure),
then the steps running, then one line per group of the rest (by default the name before
``@``, as ``on_hosts`` names its steps; or any tag) with its counts by state; the steps
done (succeeded, skipped) only counted. An expanded group lists its steps; a filter lists
the steps it matches. The web page (``web/static/trail.js``) follows the same rules.

An ``Index`` reads the rows once and then follows state changes, so that a frame costs
what it shows, not the size of the run.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from trail.core.states import State
from trail.layer1.calls import StatusField

Row = Mapping[str, Any]

BY_NAME = "name"  # group by the name before "@" (a step without "@" is its own group)
FAILURES = frozenset({State.FAILED.value, State.PAUSED_ON_FAIL.value})
DONE = frozenset({State.SUCCEEDED.value, State.SKIPPED.value})
# States in the order a group's counts are shown: what needs a look first.
ORDER = [State.PAUSED_ON_FAIL.value, State.FAILED.value, State.RUNNING.value,
         State.INTERRUPTED.value, State.BLOCKED.value, State.PAUSED.value,
         State.TO_PAUSE.value, State.TO_BLOCK.value, State.TO_SKIP.value,
         State.WAITING.value, State.READY.value, State.SUCCEEDED.value, State.SKIPPED.value]


def group_of(row: Row, by: str = BY_NAME) -> str:
    """The group of a step: its name before ``@`` (``by="name"``), else its tag ``by``."""
    if by == BY_NAME:
        return str(row[StatusField.NAME]).split("@", 1)[0]
    tags = row.get(StatusField.TAGS) or {}
    value = tags.get(by)
    return f"(no {by})" if value is None else str(value)


class Filter:
    """Which steps a person asked to see: ``drain web1*``, ``host=web17``, ``failed``.

    Every word must match (case does not matter). A word ``key=value`` matches a tag's
    value, ``state=...`` the state, ``name=...`` the name (shell-style wildcards: ``*``,
    ``?``); a plain word matches a step whose name holds it or whose state it is.
    """

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.words: list[tuple[str | None, str]] = []
        for word in self.text.split():
            key, equals, value = word.partition("=")
            self.words.append((key.lower(), value.lower()) if equals and key
                              else (None, word.lower()))

    def __bool__(self) -> bool:
        return bool(self.words)

    def fixed(self, key: str | None, value: str, row: Row) -> bool:
        """Whether ``row`` matches the word by what never changes (its name, its tags)."""
        name = str(row[StatusField.NAME]).lower()
        if key is None:
            return value in name
        if key == "name":
            return fnmatch.fnmatchcase(name, value)
        tags = row.get(StatusField.TAGS) or {}
        found = next((v for k, v in tags.items() if str(k).lower() == key), None)
        return found is not None and fnmatch.fnmatchcase(str(found).lower(), value)

    def states(self, key: str | None, value: str) -> set[str]:
        """The states that match the word by themselves."""
        if key is None:
            return {state.value for state in State if state.value.lower() == value}
        if key == "state":
            return {state.value for state in State
                    if fnmatch.fnmatchcase(state.value.lower(), value)}
        return set()


@dataclass
class Group:
    """The steps of one group (by n) and how many are in each state."""

    key: str
    steps: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return all(state in DONE for state in self.counts)

    def ordered_counts(self) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda item: _rank(item[0]))


@dataclass
class Layout:
    """A run as the grouped view shows it; every list of steps is in n order."""

    attention: list[int]  # questions waiting for an answer, then failures
    running: list[int]  # Running steps not already among the above
    groups: list[Group]  # the groups with a step not done, by their first step
    done_groups: list[Group]  # groups whose every step succeeded or was skipped
    done: dict[str, int]  # how many steps succeeded, and were skipped
    matched: list[int] | None = None  # the steps a filter matched (None: no filter)


class Index:
    """A run's steps by state and by group, kept current as their states change.

    ``reset`` reads every row once (``by``: ``"name"`` or a tag); then ``move`` follows a
    step from one state to another at no cost that grows with the run, so that a frame's
    ``layout`` costs what it shows rather than the size of the run.
    """

    def __init__(self, by: str = BY_NAME) -> None:
        self.by = by
        self.members: dict[str, set[int]] = {}  # state -> the steps in it
        self.groups: dict[str, Group] = {}  # by their first step
        self.group_of: dict[int, Group] = {}
        self._rows: Mapping[int, Row] = {}
        self._fixed: dict[tuple[str | None, str], set[int]] = {}  # filter words' steps

    def reset(self, rows: Mapping[int, Row], by: str | None = None) -> None:
        """Index ``rows`` (status rows by n, with ``Tags`` when grouping by a tag)."""
        self.by = by or self.by
        self._rows, self.members, self.groups, self.group_of = rows, {}, {}, {}
        self._fixed = {}
        for n in sorted(rows):
            row = rows[n]
            state = row[StatusField.STATE]
            self.members.setdefault(state, set()).add(n)
            key = group_of(row, self.by)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(key)
            group.steps.append(n)
            group.counts[state] = group.counts.get(state, 0) + 1
            self.group_of[n] = group

    def move(self, n: int, old: str, new: str) -> None:
        """Step ``n`` went from state ``old`` to ``new``."""
        if old == new or n not in self.group_of:
            return
        self.members.get(old, set()).discard(n)
        self.members.setdefault(new, set()).add(n)
        counts = self.group_of[n].counts
        counts[old] -= 1
        if not counts[old]:
            del counts[old]
        counts[new] = counts.get(new, 0) + 1

    def in_state(self, *states: str) -> set[int]:
        found: set[int] = set()
        for state in states:
            found |= self.members.get(state, set())
        return found

    def match(self, where: Filter) -> list[int]:
        """The steps ``where`` matches, by n."""
        matched: set[int] | None = None
        for key, value in where.words:
            fixed = self._fixed.get((key, value))
            if fixed is None:
                fixed = self._fixed[(key, value)] = {
                    n for n, row in self._rows.items() if where.fixed(key, value, row)}
            these = fixed | self.in_state(*where.states(key, value))
            matched = these if matched is None else matched & these
        return sorted(matched or ())

    def layout(self, asking: Collection[int] = (), where: Filter | None = None) -> Layout:
        """The run laid out for a person; ``asking``: the n of the steps waiting for an
        answer (``StatusMirror.asking()``)."""
        questions = sorted(n for n in asking if n in self.group_of)
        failures = sorted(self.in_state(*FAILURES))
        running = sorted(self.in_state(State.RUNNING.value) - set(questions))
        done = {state: len(self.members[state]) for state in sorted(DONE, key=_rank)
                if self.members.get(state)}
        groups = list(self.groups.values())
        return Layout(attention=questions + failures, running=running,
                      groups=[g for g in groups if not g.done],
                      done_groups=[g for g in groups if g.done], done=done,
                      matched=self.match(where) if where else None)


def arrange(rows: Mapping[int, Row], asking: Collection[int] = (), by: str = BY_NAME,
            where: Filter | None = None) -> Layout:
    """Lay ``rows`` out at once (an ``Index`` read once, for a view drawn once)."""
    index = Index(by)
    index.reset(rows)
    return index.layout(asking, where)


def _rank(state: str) -> int:
    return ORDER.index(state) if state in ORDER else len(ORDER)


__all__ = ["BY_NAME", "DONE", "FAILURES", "Filter", "Group", "Index", "Layout", "arrange",
           "group_of"]
