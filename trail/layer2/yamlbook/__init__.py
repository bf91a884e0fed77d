"""YAML runbooks: a file that operators write without Python becomes the same Steps.

``load_yaml_runbook(path)`` reads (``reader``: ruamel.yaml, YAML 1.2, duplicate keys
refused, positions kept), checks against the JSON Schema (``schema``, by jsonschema) and
beyond it (``check``: names, needs, cycles, templates, imports), then builds the trail
(``build``). Every problem is reported at once, each as ``file:line:column: what``.
"""

from __future__ import annotations

from pathlib import Path

from trail.errors import YamlRunbookError
from trail.layer2.book import Runbook
from trail.layer2.yamlbook.build import build
from trail.layer2.yamlbook.check import check, schema_problems
from trail.layer2.yamlbook.reader import Problem, ReadError, read
from trail.layer2.yamlbook.schema import SCHEMA


def load_yaml_runbook(path: str | Path) -> Runbook:
    """Read, check and build a YAML runbook; YamlRunbookError lists every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlRunbookError([Problem(str(path), 1, 1, f"cannot read the file: {exc}")]) from exc
    try:
        document = read(text, str(path))
    except ReadError as exc:
        raise YamlRunbookError([exc.problem]) from exc
    problems = schema_problems(document)
    checked, more = check(document, path.parent)
    problems += more
    if problems:
        raise YamlRunbookError(sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.column)))
    data = checked.data
    return Runbook(path, build(checked), dict(data.get("context") or {}),
                   data.get("executor", "process"), dict(data.get("answers") or {}),
                   data.get("max_parallel"), data.get("name"))


__all__ = ["SCHEMA", "load_yaml_runbook"]
