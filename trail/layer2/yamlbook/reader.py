"""Reading a YAML runbook: YAML 1.2 (``no`` is a string), duplicate keys refused, every
value's line and column kept.

ruamel.yaml does the reading: it speaks YAML 1.2 by default, refuses duplicate keys, and
its round-trip loader records where each key and item stood. Its tree is turned into plain
Python values (dict, list, str, int, float, bool, None) so the schema check sees ordinary
JSON types, with a side table of positions keyed by path.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a runbook file, at a line and column (1-based)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass
class Document:
    """A YAML file read into plain values, with where each value and key stood."""

    file: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path, message: str, *, key: bool = False) -> Problem:
        """A problem at ``path``: at its key when asked (or when that is all there is),
        else at its value, else at the nearest enclosing value."""
        table = [self.keys, self.values] if key else [self.values, self.keys]
        while True:
            for positions in table:
                if path in positions:
                    line, column = positions[path]
                    return Problem(self.file, line, column, message)
            if not path:
                return Problem(self.file, 1, 1, message)
            path = path[:-1]


class ReadError(Exception):
    """The file is not YAML trail can read; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def read(text: str, file: str) -> Document:
    """Parse YAML text into a Document; ReadError for bad YAML or a duplicate key."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ReadError(Problem(file, line, column, f"not valid YAML: {what}")) from exc
    document = Document(file, None)
    document.values[()] = (1, 1)
    document.data = _plain(tree, (), document)
    return document


def _plain(node: Any, path: Path, document: Document) -> Any:
    if isinstance(node, CommentedMap):
        result = {}
        for key, value in node.items():
            line, column = node.lc.key(key)
            child = (*path, str(key))
            document.keys[child] = (line + 1, column + 1)
            vline, vcolumn = node.lc.value(key)
            document.values[child] = (vline + 1, vcolumn + 1)
            result[str(key)] = _plain(value, child, document)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            line, column = node.lc.item(index)
            item = (*path, index)
            document.values[item] = (line + 1, column + 1)
            items.append(_plain(value, item, document))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()  # a date is text to a runbook, as JSON would have it
    return str(node)
