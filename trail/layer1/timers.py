"""Timers: callbacks due at moments of an injectable clock; the loop sleeps until the first."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable


class Timers:
    """Callbacks due at moments of ``clock`` (monotonic seconds; a MockClock in tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (self.clock() + delay, next(self._seq), callback))

    def next_due(self) -> float | None:
        """Seconds until the next timer is due (0 if one is), or None when there is none."""
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self.clock())

    def wait_ms(self) -> int | None:
        """Milliseconds until the next timer (rounded up), or None when there is none."""
        due = self.next_due()
        return None if due is None else int(due * 1000) + 1

    def run_due(self) -> int:
        """Run every callback that is due; return how many ran."""
        now = self.clock()
        ran = 0
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            callback()
            ran += 1
        return ran
