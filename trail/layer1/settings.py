"""Settings: how a run runs its steps (what TrailServer and ``trail run`` let people pick)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Settings:
    """How a run runs its steps (what TrailServer and ``trail run`` let the operator pick)."""

    executor: str = "process"  # where steps run unless a step says otherwise
    max_parallel: int | None = None  # at most this many steps at once
    pools: dict[str, int] = field(default_factory=dict)  # pool tag -> steps at once
    step_output: str | None = None  # a file steps' own stdout/stderr go to
    dask: Any = None  # the dask executor's scheduler address or distributed.Client
    step_log_bytes: int | None = None  # each step's full-output file cap (steplogs.py)
    random_fraction: Callable[[], float] = random.random  # the jitter's dice (fixed in tests)
