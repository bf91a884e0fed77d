"""Which steps may move now: the frontier of the DAG, priority, max_parallel and pools.

The run marks a step whenever something may let it move (its parents got done, it went
back to Waiting, a slot came free); ``due`` hands back the marked steps that can move,
highest priority first, and holds the ones that wait for a slot. No state changes here:
the run decides what moving means.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from trail.core.dag import Frontier, TrailGraph, gates_of, numbers_of, pool_sizes
from trail.core.states import State
from trail.core.step import Step
from trail.layer1.records import StepRecord

PENDING = frozenset({State.WAITING, State.TO_PAUSE, State.TO_SKIP, State.TO_BLOCK})


class Scheduler:
    """Ready steps in order, and the slots they run in (``max_parallel``, ``pools``)."""

    def __init__(self, graph: TrailGraph, records: list[StepRecord],
                 max_parallel: int | None = None, pools: dict[str, int] | None = None) -> None:
        if max_parallel is not None and max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1: {max_parallel!r}")
        self.max_parallel = max_parallel
        self.pools = {**pool_sizes(graph), **(pools or {})}
        self._in_pool: dict[str, int] = dict.fromkeys(self.pools, 0)
        self._records = records
        self._numbers = numbers_of(graph)  # a record is records[n]
        self._frontier = Frontier(graph)
        self._graph = graph
        self._gates = gates_of(graph)
        self._marked: list[tuple[float, int]] = []  # (-priority, n): a heap
        self._is_marked = bytearray(len(records))  # by n: in the heap already
        # Reached and Waiting, but no slot was free: (-priority, n), a heap, and by n.
        self._held: list[tuple[float, int]] = []
        self._is_held = bytearray(len(records))
        self.live: dict[int, StepRecord] = {}  # run id -> record, while the run holds a slot

    def _record(self, step: Step) -> StepRecord:
        return self._records[self._numbers[step]]

    def mark(self, record: StepRecord) -> None:
        """Look at ``record`` again in the next ``due``."""
        if not self._is_marked[record.n]:
            self._is_marked[record.n] = 1
            heapq.heappush(self._marked, (-record.step.priority, record.n))

    @property
    def marked(self) -> bool:
        """Some step waits to be looked at by ``due``."""
        return bool(self._marked)

    def mark_done(self, step: Step) -> None:
        """``step`` got done (Succeeded or Skipped): mark the children it lets through."""
        for child in self._frontier.mark_done(step):
            self.mark(self._record(child))
        if self._gates:  # a gate may open before every parent is done
            for child in self._graph.successors(step):
                if child in self._gates:
                    self.mark(self._record(child))

    def mark_failed(self, step: Step) -> None:
        """``step`` failed for good: mark the gates it settles (the first below it)."""
        if not self._gates:
            return
        seen, queue = {step}, [step]
        while queue:
            for child in self._graph.successors(queue.pop()):
                if child not in seen:
                    seen.add(child)
                    if child in self._gates:
                        self.mark(self._record(child))
                    else:
                        queue.append(child)

    def gate_failures(self, gate: Step) -> list[StepRecord] | None:
        """For a gate step: the Failed steps above it (back to the gates above), once every
        parent has settled (done, Failed, or waiting below a Failed step); None while a
        parent may still run."""
        cut: dict[Step, bool] = {}  # step -> it will not run: it failed, or is below one
        failed: list[StepRecord] = []
        for parent in self._graph.predecessors(gate):
            if not (self._record(parent).state.done or self._cut(parent, cut, failed)):
                return None
        return sorted(failed, key=lambda record: record.n)

    def _cut(self, step: Step, cut: dict[Step, bool], failed: list[StepRecord]) -> bool:
        stack = [step]
        while stack:
            top = stack[-1]
            if top in cut:
                stack.pop()
                continue
            record = self._record(top)
            if top in self._gates or record.state.done or record.state is State.RUNNING:
                cut[top] = False  # a gate above, even a failed one, is not this gate's to count
            elif record.state is State.FAILED:
                cut[top] = True
                failed.append(record)
            else:  # it waits: for good if a parent will not run
                parents = list(self._graph.predecessors(top))
                unknown = [parent for parent in parents if parent not in cut]
                if unknown:
                    stack.extend(unknown)
                    continue
                cut[top] = any(cut[parent] for parent in parents)
            stack.pop()
        return cut[step]

    def reached(self, step: Step) -> bool:
        """Every parent of ``step`` is done (for a gate: has settled)."""
        return self._frontier.reached(step) or (
            step in self._gates and self.gate_failures(step) is not None)

    def due(self, now: float, start: Callable[[StepRecord], None],
            arrive: Callable[[StepRecord], None], budget: int | None = None) -> int:
        """Call ``start`` for each marked Waiting step that may run now and ``arrive`` for
        each marked To-state step whose parents are done, highest priority first; return
        how many that was. With a ``budget``, stop after that many: the rest stay marked.

        ``start`` and ``arrive`` may mark more steps (a failure at once, a skip); those are
        handled in the same call.
        """
        moved = 0
        while self._marked and (budget is None or moved < budget):
            _, n = heapq.heappop(self._marked)
            self._is_marked[n] = 0
            record = self._records[n]
            if not self._frontier.reached(record.step) and not (
                    self._gates and self.reached(record.step)):
                continue
            if record.state is State.WAITING:
                if record.retry_at is not None and record.retry_at > now:
                    continue  # its timer marks it again
                if not self._slot_free(record):
                    self._hold(record)
                    continue
                start(record)
                moved += 1
            elif record.state in PENDING:
                arrive(record)
                moved += 1
        return moved

    def _slot_free(self, record: StepRecord) -> bool:
        if self.max_parallel is not None and len(self.live) >= self.max_parallel:
            return False
        pool = record.step.tags.get("pool")
        return pool not in self.pools or self._in_pool[pool] < self.pools[pool]

    def take_slot(self, run_id: int, record: StepRecord) -> None:
        self.live[run_id] = record
        pool = record.step.tags.get("pool")
        if pool in self._in_pool:
            self._in_pool[pool] += 1

    def free_slot(self, run_id: int | None) -> StepRecord | None:
        """The run no longer counts: free its slot, and look again at the steps held."""
        record = self.live.pop(run_id or 0, None)
        if record is None:
            return None
        pool = record.step.tags.get("pool")
        if pool in self._in_pool:
            self._in_pool[pool] -= 1
        self._unhold()
        return record

    def _hold(self, record: StepRecord) -> None:
        if not self._is_held[record.n]:
            self._is_held[record.n] = 1
            heapq.heappush(self._held, (-record.step.priority, record.n))

    def _unhold(self) -> None:
        """A slot came free: mark the held step that goes first and now fits (one run
        ended, so one more may start); not every held step, which costs as much per step
        as steps wait (100,000 behind ``max_parallel=10``)."""
        passed = []
        while self._held:
            item = heapq.heappop(self._held)
            self._is_held[item[1]] = 0
            record = self._records[item[1]]
            if record.state is not State.WAITING:
                continue  # it moved on meanwhile (paused, skipped): marked when it waits again
            if self._slot_free(record):
                self.mark(record)
                break
            passed.append(item)  # its pool is still full
        for item in passed:
            self._is_held[item[1]] = 1
            heapq.heappush(self._held, item)
