"""Process groups a step run adopted (its commands' sessions), stopped along with the run."""

from __future__ import annotations

import signal

from trail.layer1.executors.base import CallLater, signal_groups


class ProcessGroups:
    """The process groups each live run adopted: SIGTERM with the run, SIGKILL after grace."""

    def __init__(self, call_later: CallLater) -> None:
        self._call_later = call_later
        self._by_run: dict[int, list[int]] = {}

    def adopt(self, run_id: int, pgid: int, live: bool, grace: float) -> None:
        """Take on ``pgid`` for the run; a run already stopped has it stopped at once."""
        if not live:
            self.stop([pgid], grace)
            return
        self._by_run.setdefault(run_id, []).append(pgid)

    def release(self, run_id: int) -> None:
        """The run's process exited: its groups are its commands' business no more."""
        self._by_run.pop(run_id, None)

    def stop_run(self, run_id: int, grace: float) -> None:
        self.stop(self._by_run.pop(run_id, []), grace)

    def stop(self, pgids: list[int], grace: float) -> None:
        if pgids:
            signal_groups(pgids, signal.SIGTERM)
            self._call_later(grace, lambda: signal_groups(pgids, signal.SIGKILL))

    def all(self) -> list[int]:
        return [pgid for groups in self._by_run.values() for pgid in groups]
