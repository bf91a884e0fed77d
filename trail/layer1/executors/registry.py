"""The executors one run uses, made on first use, and the descriptors the loop polls for them."""

from __future__ import annotations

from collections.abc import Callable

from trail.layer1.executors.base import CallLater, Deliver, Executor


class Executors:
    """Executors by name, each bound to the run; ``on_watch(fd)`` tells the loop to poll fd.

    ``make(name)`` builds an executor (``make_executor`` with the run's step output); it
    raises ValueError for an unknown name, which the run checks before serving.
    """

    def __init__(self, make: Callable[[str], Executor], deliver: Deliver,
                 call_later: CallLater) -> None:
        self._make = make
        self._deliver = deliver
        self._call_later = call_later
        self._by_name: dict[str, Executor] = {}
        self._owner: dict[int, Executor] = {}
        self.on_watch: Callable[[int], None] = lambda fd: None
        self.on_unwatch: Callable[[int], None] = lambda fd: None

    def get(self, name: str) -> Executor:
        executor = self._by_name.get(name)
        if executor is None:
            executor = self._by_name[name] = self._make(name)
            executor.bind(self._deliver, self._call_later)
            for fd in executor.watch():
                self.watch(fd, executor)
        return executor

    def watch(self, fd: int, executor: Executor) -> None:
        self._owner[fd] = executor
        self.on_watch(fd)

    def descriptors(self) -> list[int]:
        return list(self._owner)

    def collect(self, fd: int) -> None:
        """Deliver what is ready on ``fd``; stop watching it once it is closed for good."""
        owner = self._owner.get(fd)
        if owner is not None and owner.collect(fd) and fd not in owner.watch():
            del self._owner[fd]
            self.on_unwatch(fd)

    def close(self, grace: float) -> None:
        for executor in self._by_name.values():
            executor.close(grace)
