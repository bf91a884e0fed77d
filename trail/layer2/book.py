"""Runbook: what a runbook file (Python or YAML) gives trail, whichever loader read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Runbook:
    path: Path
    trail: Any
    context: Any = None
    executor: str = "process"
    answers: dict[str, Any] = field(default_factory=dict)
    max_parallel: int | None = None
    title: str | None = None  # the trail's name when the file gives one

    @property
    def name(self) -> str:
        return self.title or self.path.stem
