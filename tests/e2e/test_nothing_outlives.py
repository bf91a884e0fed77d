"""A crashed server leaves nothing behind: no process of the run outlives it (forks,
multiprocessing workers, subprocess children, the threadsafe_class manager), no orphan
keeps its sockets alive, and the restart takes the run up without running a Succeeded
step again."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support import RunbookProcess, pid_alive, require, wait_states, wait_until
from trail.layer1.forks import describe, holders

RUNBOOK = str(Path(__file__).parent / "forking_runbook.py")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (by parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening_owners(path: str) -> str:
    """What `ss` says holds the socket at ``path`` (empty: nobody)."""
    result = subprocess.run([require("ss"), "-xlpH", "src", path], capture_output=True,
                            text=True)
    return result.stdout.strip()


def server(tmp: Path, name: str) -> RunbookProcess:
    return RunbookProcess(RUNBOOK, tmp, name, FORK_LOG=str(tmp / "ran.log"),
                          FORK_PIDS=str(tmp / "pids"))


def test_a_forking_step_and_a_crash_leave_nothing_alive_and_nothing_runs_twice(tmp_path):
    before = server(tmp_path, "before")
    after = server(tmp_path, "after")  # another socket: as the default restart does
    try:
        client = before.start()
        client.start(dry_run=False)
        wait_states(client, {"first": "Succeeded", "forker": "Running"})
        wait_until(lambda: (tmp_path / "pids").exists(), "the step's processes")
        step_pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
        assert before.process is not None
        run_processes = descendants(before.process.pid)
        assert set(step_pids) <= run_processes
        assert len(run_processes) >= 6  # the step's four, the manager, the warden

        os.kill(before.process.pid, signal.SIGKILL)  # the server only, not its group
        before.process.wait(10)
        try:
            wait_until(lambda: not any(pid_alive(p) for p in run_processes),
                       "every process of the crashed run to die")
        except AssertionError:
            left = [describe(p) for p in run_processes if pid_alive(p)]
            for pid in run_processes:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"alive after the crash: {left}") from None
        assert holders(before.socket) == []
        assert holders(before.socket + ".events") == []
        assert listening_owners(before.socket) == ""

        client = after.start()
        info = client.info()
        assert info["resumed"], "the restart did not take up the crashed run"
        # The crashed server's socket files went with the run's taking up.
        assert not os.path.exists(before.socket)
        assert not os.path.exists(before.socket + ".events")
        wait_states(client, {"first": "Succeeded", "forker": "Interrupted"})
        assert (tmp_path / "ran.log").read_text().split() == ["first", "forker"]
        client.shutdown(dry_run=False)
        assert after.process is not None
        survivors = descendants(after.process.pid)
        after.process.wait(30)
        wait_until(lambda: not any(pid_alive(p) for p in survivors),
                   "every process of the restarted run to end with it")
    finally:
        before.stop()
        after.stop()


def test_the_same_socket_is_taken_up_after_a_crash(tmp_path):
    first = server(tmp_path, "same")
    try:
        client = first.start()
        client.start(dry_run=False)
        wait_states(client, {"first": "Succeeded", "forker": "Running"})
        wait_until(lambda: (tmp_path / "pids").exists(), "the step's processes")
        assert first.process is not None
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        client = first.start()  # the same --socket
        assert client.info()["resumed"]
        assert (tmp_path / "ran.log").read_text().split() == ["first", "forker"]
        client.shutdown(dry_run=False)
        first.process.wait(30)
    finally:
        first.stop()


def test_a_crash_storm_of_a_forking_run(tmp_path):
    """TRAIL_FORK_KILLS kills (default 20) of a server whose step forks every kind of
    process: after each, nothing of the run is alive and no orphan holds a socket; the
    Succeeded step never runs again."""
    kills = int(os.environ.get("TRAIL_FORK_KILLS", "20"))
    process = server(tmp_path, "storm")
    pids = tmp_path / "pids"
    try:
        client = process.start()
        client.start(dry_run=False)
        for kill in range(kills):
            wait_states(client, {"first": "Succeeded", "forker": "Running"})
            wait_until(pids.exists, "the step's processes")
            assert process.process is not None
            run_processes = descendants(process.process.pid)
            os.kill(process.process.pid, signal.SIGKILL)
            process.process.wait(10)
            wait_until(lambda: not any(pid_alive(p) for p in run_processes),  # noqa: B023
                       f"every process of the run to die after kill {kill + 1}")
            assert holders(process.socket) == []
            pids.unlink()
            client = process.start()
            assert client.info()["resumed"]
            client.resume(dry_run=False)
        log = tmp_path / "ran.log"
        wait_until(lambda: log.read_text().split().count("forker") == kills + 1,
                   "the step to run once more after the last restart")
        assert log.read_text().split().count("first") == 1
        client.shutdown(dry_run=False)
        assert process.process is not None
        process.process.wait(30)
    finally:
        process.stop()
