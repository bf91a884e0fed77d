"""Process groups a step run adopted (its commands' sessions), stopped along with the run."""

from __future__ import annotations

import signal

from trail.layer1.executors.base import CallLater, signal_groups


class ProcessGroups:
    """The process groups each live run adopted: SIGTERM with the run, SIGKILL after grace."""

    def __init__(self, call_later: CallLater) -> None:
        self._call_later = call_later
        self._by_run: dict[int, list[int]] = {}
        # Groups the step stops itself first: signalled only this many seconds after the
        # stop, if the run has not ended by then.
        self._later: dict[int, list[tuple[int, float]]] = {}
        self._waiting: dict[int, list[int]] = {}  # such groups of stopped runs, till due
        self._elsewhere: dict[int, float] = {}  # run -> seconds, for groups not here

    def adopt(self, run_id: int, pgid: int | None, live: bool, grace: float,
              after: float | None = None) -> None:
        """Take on ``pgid`` for the run; a run already stopped has it stopped at once (or
        ``after`` seconds from now, if the step stops it itself first). ``pgid`` None: a
        group on another machine (a Dask worker's, which its agent stops), which the step
        stops itself within ``after``: the run is given that long before it is killed."""
        if pgid is None:
            if live and after is not None:
                self._elsewhere[run_id] = max(after, self._elsewhere.get(run_id, 0.0))
            return
        if not live:
            if after is None:
                self.stop([pgid], grace)
            else:
                self._stop_later(run_id, pgid, grace, after)
            return
        if after is None:
            self._by_run.setdefault(run_id, []).append(pgid)
        else:
            self._later.setdefault(run_id, []).append((pgid, after))

    def release(self, run_id: int) -> None:
        """The run's process exited: its groups are its commands' business no more."""
        self._by_run.pop(run_id, None)
        self._later.pop(run_id, None)
        self._waiting.pop(run_id, None)
        self._elsewhere.pop(run_id, None)

    def stops_itself(self, run_id: int) -> float | None:
        """Seconds the run takes at most to stop the groups it stops itself first (see
        ``adopt``), or None if it has none."""
        times = [after for _, after in self._later.get(run_id, [])]
        if run_id in self._elsewhere:
            times.append(self._elsewhere[run_id])
        return max(times) if times else None

    def stop_run(self, run_id: int, grace: float) -> None:
        self._elsewhere.pop(run_id, None)
        self.stop(self._by_run.pop(run_id, []), grace)
        for pgid, after in self._later.pop(run_id, []):
            self._stop_later(run_id, pgid, grace, after)

    def _stop_later(self, run_id: int, pgid: int, grace: float, after: float) -> None:
        self._waiting.setdefault(run_id, []).append(pgid)

        def due() -> None:
            waiting = self._waiting.get(run_id, [])
            if pgid in waiting:  # the run has not ended: signal the group now
                waiting.remove(pgid)
                self.stop([pgid], grace)
        self._call_later(after, due)

    def stop(self, pgids: list[int], grace: float) -> None:
        if pgids:
            signal_groups(pgids, signal.SIGTERM)
            self._call_later(grace, lambda: signal_groups(pgids, signal.SIGKILL))

    def all(self) -> list[int]:
        return ([pgid for groups in self._by_run.values() for pgid in groups]
                + [pgid for groups in self._later.values() for pgid, _ in groups]
                + [pgid for groups in self._waiting.values() for pgid in groups])
