"""The dask executor against a real LocalCluster (scheduler and 2 workers as processes): values,
questions, failures, timeouts, retries, interrupts that leave no process, a mixed trail, a
worker killed mid-step, and a server killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    RunbookProcess,
    pid_alive,
    states,
    wait_pids,
    wait_states,
    wait_until,
)
from trail import Step

ROOT = Path(__file__).parents[2]


def require_distributed() -> None:
    """distributed is a dev dependency: missing fails in CI, skips (loudly) elsewhere."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        message = "distributed is not installed (pip install -e '.[dev]' or 'trail[dask]')"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def local_cluster() -> Iterator[Any]:
    """A LocalCluster on loopback: a scheduler and 2 workers (2 threads each) as processes."""
    require_distributed()
    from distributed import LocalCluster

    # Workers (and the step processes they start) import this worktree's trail and tests.
    # A step whose server died gets 60 s between SIGTERM and SIGKILL from its agent: the
    # take-up test sees the take-up, not the agent, end a step that ignores SIGTERM. The
    # agents preload a module the steps find imported.
    env = {"PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"]
                                      if os.environ.get("PYTHONPATH") else ""),
           "TRAIL_DASK_ORPHAN_GRACE": "60", "TRAIL_DASK_PRELOAD": "xml.dom.minidom"}
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()
        for name, value in old.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster() as cluster:
        yield cluster


@pytest.fixture
def dask_serve(serve, cluster):
    def start(definition: Any, **options: Any) -> Any:
        options.setdefault("executor", "dask")
        return serve(definition, dask=cluster.scheduler_address, **options)
    return start


def rows(client: Any) -> dict[str, dict[str, Any]]:
    fields = ["State", "Return value", "Output messages", "Prompt messages"]
    return {row["Name"]: row for row in client.status(fields=fields)}


def journaled_where(client: Any) -> dict[int, str]:
    """Step number -> where the journal says its run ran (the encoded message)."""
    server = client.server
    with sqlite3.connect(server.journal.path) as db:
        return dict(db.execute("SELECT n, message FROM messages WHERE run_id = ? AND "
                               "kind = 'where' ORDER BY id", (server.run_id,)).fetchall())


def test_a_diamond_runs_with_return_values_on_workers(dask_serve):
    def top(trail_env, context):
        trail_env.output(f"on pid {os.getpid()}")
        return {"pid": os.getpid(), "n": 1}

    def left(trail_env, context):
        return [1, 2, 3]

    def right(trail_env, context):
        return "right"

    def bottom(trail_env, context):
        return 42

    a, b, c, d = Step(top), Step(left), Step(right), Step(bottom)
    client = dask_serve([(a, b), (a, c), (b, d), (c, d)])
    client.start()
    wait_states(client, {"top": "Succeeded", "left": "Succeeded", "right": "Succeeded",
                         "bottom": "Succeeded"})
    got = rows(client)
    assert got["left"]["Return value"] == [1, 2, 3]
    assert got["bottom"]["Return value"] == 42
    pid = got["top"]["Return value"]["pid"]
    assert pid != os.getpid()
    assert got["top"]["Output messages"] == [f"on pid {pid}"]


def test_a_question_on_a_worker_is_answered_by_a_client(dask_serve):
    def ask(trail_env, context):
        answer = trail_env.input("which replica?")
        trail_env.output(f"got {answer}")
        return answer

    client = dask_serve(Step(ask))
    client.start()
    wait_until(client.steps_waiting_for_user_input, "the question")
    assert "which replica?" in rows(client)["ask"]["Prompt messages"]
    client.send_message_to_steps("db2", dry_run=False)
    wait_states(client, {"ask": "Succeeded"})
    row = rows(client)["ask"]
    assert row["Return value"] == "db2"
    assert "got db2" in row["Output messages"]


def test_a_failure_comes_back_with_its_traceback(dask_serve):
    def broken(trail_env, context):
        raise ValueError("no such table")

    client = dask_serve(Step(broken))
    client.start()
    wait_states(client, {"broken": "Paused due to failure"})
    assert rows(client)["broken"]["Return value"] == "ValueError: no such table"


def test_retries_run_the_step_again(dask_serve, tmp_path):
    tries = tmp_path / "tries"

    def flaky(trail_env, context):
        with open(tries, "a") as f:
            f.write("x")
        if len(tries.read_text()) < 3:
            raise RuntimeError("not yet")
        return "done"

    client = dask_serve(Step(flaky, retries=3, retry_delay=0.1))
    client.start()
    wait_states(client, {"flaky": "Succeeded"})
    assert tries.read_text() == "xxx"
    assert rows(client)["flaky"]["Return value"] == "done"


def test_interrupt_stops_the_step_on_the_worker_and_spares_other_tasks(dask_serve, tmp_path,
                                                                       cluster):
    pids = tmp_path / "pids"
    cleaned = tmp_path / "cleaned"
    neighbour = tmp_path / "neighbour"

    def sleeper(trail_env, context):
        child = subprocess.Popen(["sleep", "100"])
        pids.write_text(f"{os.getpid()} {child.pid}")

        def cleanup(signum, frame):
            cleaned.write_text("yes")
            raise SystemExit(1)

        signal.signal(signal.SIGTERM, cleanup)
        time.sleep(100)

    def other(trail_env, context):
        neighbour.write_text(str(os.getpid()))
        time.sleep(3)
        return "untouched"

    client = dask_serve([Step(sleeper), Step(other)])
    client.start()
    recorded = wait_pids(pids, "the step to record its pids")
    wait_pids(neighbour, "the other step to start")
    assert all(pid_alive(p) for p in recorded)
    started = time.monotonic()
    client.interrupt(dry_run=False, name="sleeper")
    wait_until(lambda: not any(pid_alive(p) for p in recorded), "the step's processes gone",
               timeout=5)
    stopped_in = time.monotonic() - started
    assert cleaned.read_text() == "yes"  # its SIGTERM handler ran
    assert states(client)["sleeper"] == "Interrupted"
    wait_states(client, {"other": "Succeeded"})
    assert rows(client)["other"]["Return value"] == "untouched"
    # Both workers still there: nothing but the step was signalled.
    assert len(cluster.scheduler_info["workers"]) == 2
    assert stopped_in < 5


def test_a_timeout_stops_a_step_blocked_in_sleep(dask_serve, tmp_path):
    pid_file = tmp_path / "pid"

    def slow(trail_env, context):
        pid_file.write_text(str(os.getpid()))
        time.sleep(100)

    client = dask_serve(Step(slow, timeout=1.5, kill_grace=0.5))
    client.start()
    (pid,) = wait_pids(pid_file, "the step to start")
    wait_states(client, {"slow": "Paused due to failure"})
    assert rows(client)["slow"]["Return value"] == (
        "StepTimeoutError: step 'slow' timed out after 1.5 s and was stopped")
    wait_until(lambda: not pid_alive(pid), "the timed-out process gone", timeout=5)


def test_a_step_that_ignores_sigterm_is_killed_after_its_grace(dask_serve, tmp_path):
    pid_file = tmp_path / "pid"

    def stubborn(trail_env, context):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pid_file.write_text(str(os.getpid()))
        time.sleep(100)

    client = dask_serve(Step(stubborn, kill_grace=1))
    client.start()
    (pid,) = wait_pids(pid_file, "the step to start")
    client.interrupt(dry_run=False)
    time.sleep(0.3)
    assert pid_alive(pid)  # SIGTERM ignored: still there during the grace
    wait_until(lambda: not pid_alive(pid), "SIGKILL after the grace", timeout=5)


def test_pause_skip_and_a_mixed_trail(dask_serve, tmp_path):
    def here(trail_env, context):
        return os.getpid()

    def there(trail_env, context):
        return os.getpid()

    def skipped(trail_env, context):
        return "ran"

    first, second, third = Step(here), Step(there, executor="dask"), Step(skipped,
                                                                          executor="dask")
    client = dask_serve([(first, second), (second, third)], executor="process")
    client.pause(dry_run=False, name="there")
    client.skip(dry_run=False, name="skipped")
    client.start()
    wait_states(client, {"here": "Succeeded", "there": "Paused"})
    client.resume(dry_run=False, name="there")
    wait_states(client, {"there": "Succeeded", "skipped": "Skipped"})
    # Only the dask step ran on a worker; the journal says which task (at submission),
    # then which worker.
    where = journaled_where(client)
    assert set(where) == {1}
    assert where[1].startswith('"running on Dask worker tcp://127.0.0.1:')
    assert "task trail-step-" in where[1]


def test_a_step_that_cannot_be_pickled_fails_at_submission(dask_serve):
    import threading

    lock = threading.Lock()

    def holds_a_lock(trail_env, context):
        with lock:
            return 1

    client = dask_serve(Step(holds_a_lock))
    client.start()
    wait_states(client, {"holds_a_lock": "Paused due to failure"})
    value = rows(client)["holds_a_lock"]["Return value"]
    assert value.startswith("TypeError: step function ")
    assert "holds_a_lock" in value and "cannot be sent to Dask workers" in value


def test_a_worker_killed_mid_step_fails_the_step_naming_the_worker(dask_serve, tmp_path,
                                                                  cluster):
    pid_file = tmp_path / "pid"

    def doomed(trail_env, context):
        # The step's parent is its worker's agent, whose parent is the worker.
        with open(f"/proc/{os.getppid()}/stat") as stat:
            worker = stat.read().rsplit(")", 1)[1].split()[1]
        pid_file.write_text(f"{os.getpid()} {worker}")
        time.sleep(100)

    client = dask_serve(Step(doomed))
    client.start()
    step_pid, worker_pid = wait_pids(pid_file, "the step to start")
    os.kill(worker_pid, signal.SIGKILL)
    wait_states(client, {"doomed": "Paused due to failure"})
    value = rows(client)["doomed"]["Return value"]
    assert "Dask worker tcp://127.0.0.1:" in value and "died" in value
    wait_until(lambda: not pid_alive(step_pid), "the step gone with its worker", timeout=5)
    # Dask may start the task again on the other worker: the trail refuses it, and the
    # step does not run a second time (it would write other pids).
    time.sleep(2)
    assert states(client)["doomed"] == "Paused due to failure"
    assert pid_file.read_text() == f"{step_pid} {worker_pid}"
    wait_until(lambda: len(cluster.scheduler_info["workers"]) == 2, "the nanny's new worker")


def test_a_step_finds_the_modules_its_workers_preload(dask_serve):
    def imported(trail_env, context):
        import sys

        return "xml.dom.minidom" in sys.modules

    client = dask_serve(Step(imported))
    client.start()
    wait_states(client, {"imported": "Succeeded"})
    assert rows(client)["imported"]["Return value"] is True


def test_a_step_holds_none_of_its_workers_connections(dask_serve):
    def descriptors(trail_env, context):
        held = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(FileNotFoundError):  # the listing's own, closed now
                held.append(os.readlink(f"/proc/self/fd/{fd}"))
        return held

    client = dask_serve(Step(descriptors))
    client.start()
    wait_states(client, {"descriptors": "Succeeded"})
    held = rows(client)["descriptors"]["Return value"]
    # Its stdio and its two pipes to the agent: no socket, nothing else of the worker's.
    assert not [target for target in held if target.startswith("socket:")], held
    assert len(held) <= 5, held


RUNBOOK = '''
import os, time
from trail import Step

def long(trail_env, context):
    with open(PID_FILE, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(100)

trail = Step(long)
executor = "dask"
'''


def test_kill_9_of_the_server_stops_the_step_and_take_up_finds_it_interrupted(
        tmp_path, cluster):
    book = tmp_path / "dask_book.py"
    pid_file = tmp_path / "pid"
    # The step runs on a worker: it finds its file in its own code, not in the server's env.
    book.write_text(f"PID_FILE = {str(pid_file)!r}\n" + RUNBOOK)
    server = RunbookProcess(str(book), tmp_path, "dask", "--dask", cluster.scheduler_address)
    try:
        client = server.start()
        client.start(dry_run=False)
        (pid,) = wait_pids(pid_file, "the step to start on a worker")
        assert pid_alive(pid)

        def journaled_where() -> Any:
            with sqlite3.connect(server.journal) as db:
                return db.execute("SELECT message FROM messages WHERE kind = 'where' "
                                  "ORDER BY id").fetchone()

        # The task's key is journaled with the step's Running, before it is submitted: a
        # kill at any moment after the step started leaves take-up what it needs.
        (where,) = journaled_where()
        server.kill()
        # The worker's agent saw the server go and stopped the step.
        wait_until(lambda: not pid_alive(pid), "the orphaned step to be stopped", timeout=10)
        pid_file.unlink()
        client = server.start()
        assert client.info()["resumed"]
        assert states(client) == {"long": "Interrupted"}
        assert journaled_where() == (where,)  # which task ran it
        assert where.startswith('"submitted to Dask as task trail-step-')
        time.sleep(1)
        assert not pid_file.exists()  # nothing ran it again behind the trail's back
        client.shutdown(dry_run=False)
        server.process.wait(30)  # type: ignore[union-attr]
    finally:
        server.stop()


def test_a_scheduler_that_cannot_be_reached_fails_the_step_and_the_trail_answers(serve):
    require_distributed()

    def step(trail_env, context):
        return 1

    client = serve(Step(step), executor="dask", dask="tcp://127.0.0.1:1")
    client.start()
    # The connection is tried on a thread of its own: the trail answers meanwhile.
    assert states(client) == {"step": "Running"}
    wait_states(client, {"step": "Paused due to failure"}, timeout=40)
    value = rows(client)["step"]["Return value"]
    assert value.startswith("ConnectionError: cannot reach the Dask scheduler at "
                            "tcp://127.0.0.1:1: ")


def test_no_address_is_refused_before_the_trail_serves(monkeypatch):
    from trail import TrailServer

    monkeypatch.delenv("TRAIL_DASK_ADDRESS", raising=False)
    with pytest.raises(ValueError, match=r"needs the scheduler's address.*TRAIL_DASK_ADDRESS"):
        TrailServer(Step(os.getpid), executor="dask", journal=False)


def test_a_straggler_of_an_interrupted_step_is_killed_after_the_steps_grace(dask_serve,
                                                                            tmp_path):
    pids = tmp_path / "pids"

    def leaves_a_straggler(trail_env, context):
        # The step ends on SIGTERM at once; the command it started ignores SIGTERM.
        child = subprocess.Popen(["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"])
        pids.write_text(f"{child.pid}")
        time.sleep(100)

    client = dask_serve(Step(leaves_a_straggler, kill_grace=1))
    client.start()
    (straggler,) = wait_pids(pids, "the step to start its command")
    time.sleep(0.3)  # the shell has set its trap
    client.interrupt(dry_run=False)
    wait_states(client, {"leaves_a_straggler": "Interrupted"})
    # Gone after the step's grace (1 s), not the agent's own fallback (5 x 60 s here).
    wait_until(lambda: not pid_alive(straggler), "the straggler killed", timeout=6)


def test_a_group_the_step_was_to_stop_itself_is_stopped_when_its_time_is_up(dask_serve,
                                                                           tmp_path):
    """A step that adopts a command's group to stop it itself (``after``), and does not:
    the worker's agent leaves the group alone for that long, then sends it SIGTERM."""
    pids = tmp_path / "pids"

    def forgets_its_command(trail_env, context):
        command = subprocess.Popen(["sleep", "100"], start_new_session=True)
        trail_env.adopt_process_group(command.pid, after=2.0)
        trail_env.on_interrupt(lambda: None)  # heard, and nothing done about it
        pids.write_text(f"{command.pid}")
        while True:
            time.sleep(0.1)

    client = dask_serve(Step(forgets_its_command, kill_grace=30))
    client.start()
    (command,) = wait_pids(pids, "the step to start its command")
    client.interrupt(dry_run=False)
    stopped_at = time.monotonic()
    wait_until(lambda: not pid_alive(command), "the command stopped", timeout=15)
    assert time.monotonic() - stopped_at >= 1.5  # not before the time the step asked for


STUBBORN_RUNBOOK = '''
import os, signal, time
from trail import Step

def stubborn(trail_env, context):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(PID_FILE, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(300)

trail = Step(stubborn)
executor = "dask"
'''


def test_take_up_finds_a_step_still_running_on_a_worker_and_stops_it(tmp_path, cluster):
    book = tmp_path / "stubborn_book.py"
    pid_file = tmp_path / "pid"
    book.write_text(f"PID_FILE = {str(pid_file)!r}\n" + STUBBORN_RUNBOOK)
    server = RunbookProcess(str(book), tmp_path, "stubborn", "--dask",
                            cluster.scheduler_address)
    try:
        client = server.start()
        client.start(dry_run=False)
        (pid,) = wait_pids(pid_file, "the step to start on a worker")
        server.kill()
        time.sleep(1)
        # It ignores the SIGTERM its agent sent when the server went (and its agent would
        # wait 60 s before SIGKILL) ...
        assert pid_alive(pid)
        client = server.start()
        # ... but the take-up found it still running on the worker and stopped it.
        wait_until(lambda: not pid_alive(pid), "the take-up to stop the step", timeout=10)
        assert client.info()["resumed"]
        assert states(client) == {"stubborn": "Interrupted"}
        client.shutdown(dry_run=False)
        server.process.wait(30)  # type: ignore[union-attr]
    finally:
        server.stop()
        if pid_file.exists() and pid_alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_interrupt_of_a_step_blocked_in_subprocess_run_leaves_no_process(dask_serve,
                                                                         tmp_path):
    pids = tmp_path / "pids"

    def waits_on_a_command(trail_env, context):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()} ")
        subprocess.run(["sh", "-c", f"echo $$ >> {pids}; exec sleep 100"], check=True)

    client = dask_serve(Step(waits_on_a_command))
    client.start()
    recorded = wait_until(lambda: len(pids.read_text().split()) == 2 and pids.read_text().split()
                          if pids.exists() else [], "the step and its sleep to start")
    recorded = [int(pid) for pid in recorded]
    assert all(pid_alive(p) for p in recorded)
    client.interrupt(dry_run=False)
    wait_until(lambda: not any(pid_alive(p) for p in recorded), "no process left", timeout=5)
    assert states(client) == {"waits_on_a_command": "Interrupted"}


def test_an_agent_killed_by_sigkill_leaves_no_socket_behind_once_replaced():
    require_distributed()
    from trail.layer1.executors.dask import worker

    first = Path(worker.ensure_agent())
    agent = worker._agent
    assert agent is not None and first.exists()
    try:
        agent.kill()  # no clean-up of its own
        agent.wait(10)
        second = Path(worker.ensure_agent())  # the next task's: a new agent
        assert second != first and second.exists()
        assert not first.parent.exists()
    finally:
        # End of its input: this "worker" is gone; the agent removes its own socket.
        last = worker._agent
        assert last is not None and last.stdin is not None
        last.stdin.close()
        last.wait(10)
        assert not Path(worker._agent_socket).parent.exists()
        worker._agent, worker._agent_socket = None, ""


def test_an_agent_serves_on_while_a_trail_does_not_answer_its_connection():
    require_distributed()
    import socket
    import threading

    from trail.layer1.executors.dask import worker

    # A listener that never accepts, its queue full: a further connection gets no answer.
    silent = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(silent.getsockname())
        fillers.append(filler)
    header = {"endpoint": list(silent.getsockname()), "token": "x", "run": 1,
              "key": "trail-step-test-1", "capture": False, "worker": "?", "pid": 0}
    answers: list[Any] = []
    task = threading.Thread(target=lambda: answers.append(worker._ask(header, b"")))
    worker.ensure_agent()
    try:
        task.start()
        time.sleep(0.5)  # its connection under way
        # Another task (a take-up's stop) is answered meanwhile.
        assert worker._ask({"stop": []}, b"", 30) == {"found": []}
        assert task.is_alive() and not answers
        task.join(30)  # the connection's own deadline refuses it
        assert answers and "cannot reach the trail" in answers[0]["refused"]
    finally:
        silent.close()
        for filler in fillers:
            filler.close()
        last = worker._agent
        assert last is not None and last.stdin is not None
        last.stdin.close()
        last.wait(10)
        worker._agent, worker._agent_socket = None, ""
