"""How steps run: processes, groups, timeouts, processors, context, events."""

from __future__ import annotations

import copyreg
import os
import pickle
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import pid_alive, states, wait_pids, wait_states, wait_until
from trail import Step, StepInterruptedError
from trail.layer1.events import StateChanged


def group_sleeper(pids: Path, ignore_term: bool = False):
    """Starts two grandchildren (a shell and its sleep), records every pid, sleeps."""

    def action(trail_env, context):
        if ignore_term:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shell = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60; wait"]
                                 if ignore_term else ["sh", "-c", "sleep 60 & sleep 60; wait"])
        time.sleep(0.3)
        children = subprocess.run(["pgrep", "-g", str(os.getpgid(0))], capture_output=True,
                                  text=True).stdout.split()
        pids.write_text(" ".join({str(os.getpid()), str(shell.pid), *children}))
        time.sleep(60)

    return action


def test_interrupt_kills_the_whole_process_group(serve, tmp_path):
    pids = tmp_path / "pids"
    client = serve(Step(group_sleeper(pids), name="group"))
    client.start()
    recorded = wait_pids(pids, "the step to record its pids")
    assert len(recorded) >= 4 and all(pid_alive(p) for p in recorded)
    client.interrupt(dry_run=False)
    wait_until(lambda: not any(pid_alive(p) for p in recorded), "every process to be gone",
               timeout=5)


def test_a_step_that_ignores_sigterm_is_killed_after_its_grace(serve, tmp_path):
    pids = tmp_path / "pids"
    client = serve(Step(group_sleeper(pids, ignore_term=True), name="stubborn",
                        kill_grace=3))
    client.start()
    recorded = wait_pids(pids, "the step to record its pids")
    client.interrupt(dry_run=False)
    assert states(client) == {"stubborn": "Interrupted"}
    # SIGTERM is ignored: during the grace period the processes are still there ...
    assert any(pid_alive(p) for p in recorded)
    # ... and SIGKILL after it leaves none.
    wait_until(lambda: not any(pid_alive(p) for p in recorded), "SIGKILL after grace",
               timeout=15)


def test_a_timeout_stops_the_step_and_fails_it(serve, tmp_path, executor):
    pid_file = tmp_path / "pid"

    def slow(trail_env, context):
        pid_file.write_text(str(os.getpid()))
        for _ in range(600):
            if trail_env.interrupted:
                return "noticed"
            time.sleep(0.1)

    client = serve(Step(slow, timeout=2), executor=executor)
    client.start()
    # No wait for the step's pid first: on a loaded machine a Dask worker may take the 2 s
    # to start it, and the timeout counts from the start.
    wait_states(client, {"slow": "Paused due to failure"})
    row = client.status()[0]
    assert row["Return value"] == (
        "StepTimeoutError: step 'slow' timed out after 2 s and was stopped"
    )
    if executor == "process":
        [pid] = wait_pids(pid_file, "the step's pid")
        wait_until(lambda: not pid_alive(pid), "the timed-out process to be gone", timeout=5)


def test_a_process_that_dies_without_a_result_fails_the_step(serve):
    def vanish(trail_env, context):
        os._exit(3)

    def killed(trail_env, context):
        os.kill(os.getpid(), signal.SIGKILL)

    client = serve([Step(vanish), Step(killed)])
    client.start()
    wait_states(client, {"vanish": "Paused due to failure", "killed": "Paused due to failure"})
    rows = {row["Name"]: row["Return value"] for row in client.status()}
    assert rows["vanish"] == ("StepProcessError: the step's process exited with code 3 before "
                              "it reported a result")
    assert "killed by SIGKILL" in rows["killed"]


class Unloadable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


def test_values_and_errors_that_cannot_cross_processes(serve):
    # distributed (imported by this session's dask tests) teaches every exception class to
    # pickle through copyreg; this test is about one that cannot.
    copyreg.dispatch_table.pop(Unloadable, None)

    def lock(trail_env, context):
        return threading.Lock()

    def odd_error(trail_env, context):
        raise Unloadable(1, 2)

    client = serve([Step(lock), Step(odd_error)])
    client.start()
    wait_states(client, {"lock": "Succeeded", "odd_error": "Paused due to failure"})
    rows = {row["Name"]: row["Return value"] for row in client.status()}
    assert rows["lock"].startswith("<unlocked _thread.lock")
    assert rows["odd_error"] == "Unloadable: 1/2"
    with pytest.raises(TypeError):  # the premise: it really cannot be loaded back
        pickle.loads(pickle.dumps(Unloadable(1, 2)))


def test_processors_run_in_the_manager_and_context_reaches_steps(serve, executor):
    server_pid = os.getpid()
    seen = []

    def pre(trail_env, context):
        seen.append(("pre", os.getpid()))
        trail_env.output("from pre")
        return (context["base"],), {"extra": 2}

    def action(base, extra):
        return {"sum": base + extra, "pid": os.getpid()}

    def post(trail_env, context, value):
        seen.append(("post", os.getpid()))
        return value["sum"] * 10 if value["pid"] != server_pid or executor == "thread" else -1

    def handler(trail_env, context, error):
        seen.append(("failure", os.getpid()))
        return f"handled {error}"

    def bad(trail_env, context):
        raise KeyError("boom")

    client = serve(
        Step(action, pre_processor=pre, post_processor=post) >> Step(bad, failure_handler=handler),
        context={"base": 1},
        executor=executor,
    )
    client.start()
    wait_states(client, {"action": "Succeeded", "bad": "Paused due to failure"})
    rows = {row["Name"]: row for row in client.status()}
    assert rows["action"]["Return value"] == 30
    assert rows["action"]["Output messages"] == ["from pre"]
    assert rows["bad"]["Return value"] == "handled 'boom'"
    assert seen == [("pre", server_pid), ("post", server_pid), ("failure", server_pid)]


def test_a_raising_pre_processor_fails_the_step(serve):
    def pre(trail_env, context):
        raise ValueError("no arguments for you")

    client = serve(Step(lambda e, c: 1, name="x", pre_processor=pre))
    client.start()
    wait_states(client, {"x": "Paused due to failure"})
    assert client.status()[0]["Return value"] == "ValueError: no arguments for you"


def test_skip_progeny_on_failure(serve, executor):
    def fail(trail_env, context):
        raise RuntimeError("no")

    a = Step(fail, name="a", pause_on_fail=False, skip_progeny_on_failure=True)
    b, c, other = (Step(lambda e, x: 1, name=n) for n in ("b", "c", "other"))
    d = Step(lambda e, x: 1, name="d")
    client = serve([(a, b), (b, d), (b, c), (other, c)], executor=executor)
    client.start()
    # Strict progeny, as AutoTrail: c also waits on `other`, outside a's branch, so it is
    # not skipped; it runs once b (skipped, so done) and other are done.
    wait_states(client, {"a": "Failed", "b": "Skipped", "d": "Skipped", "other": "Succeeded",
                         "c": "Succeeded"})


def test_closures_lambdas_and_repl_functions_run_in_processes(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from trail import Step, TrailServer, TrailClient
        factor = 7
        def typed_here(trail_env, context):
            return context * factor
        s = TrailServer(Step(typed_here) >> Step(lambda e, c: c + 1, name="lam"), context=6)
        s.serve(threaded=True)
        c = TrailClient(s.socket_file)
        c.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            rows = c.status()
            if all(r["State"] == "Succeeded" for r in rows):
                break
            time.sleep(0.01)
        print([r["Return value"] for r in rows])
        c.shutdown(dry_run=False)
        """
    )
    # Read from stdin, as a REPL would: nothing of it can be imported by a child process.
    result = subprocess.run([sys.executable, "-"], input=script, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "[42, 7]", result.stderr


def test_the_event_stream_sees_a_step_that_lasts_no_time(serve, executor):
    client = serve(Step(lambda e, c: None, name="blink"), executor=executor)
    with client.subscribe() as stream:
        client.start()
        seen = []
        while not seen or seen[-1] != "Succeeded":
            event = stream.next(timeout=20)
            assert event is not None, f"events stopped after {seen}"
            if isinstance(event, StateChanged):
                seen.append(event.state)
                assert event.name == "blink"
    assert seen == ["Waiting", "Running", "Succeeded"]


def write_to_a_closed_pipe(trail_env, context):
    """What a step does when a command it feeds exits early (sudo refusing at once)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        os.write(write_end, b"input nobody reads")
    except BrokenPipeError:
        return "told: broken pipe"
    finally:
        os.close(write_end)
    return "wrote"


def test_a_write_to_a_closed_pipe_is_an_error_the_step_can_handle(serve, executor):
    """As in any Python program, not a signal that kills the step's process (it did under
    the process executor: sudo refusing before its input was written failed the step with
    "killed by SIGPIPE", one run in a few)."""
    client = serve(Step(write_to_a_closed_pipe, name="pipe"), executor=executor)
    client.start()
    wait_states(client, {"pipe": "Succeeded"})
    assert client.status()[0]["Return value"] == "told: broken pipe"


def test_a_step_process_holds_no_pipe_of_the_server(serve, tmp_path):
    """A pipe another thread of the server's process has open when a step forks (such as
    the one subprocess.run waits on until its child has exec'd) is not held open by the
    step: that subprocess.run would hang until the step ended (seen: a test's pgrep hung
    for two minutes beside a sleeping step)."""
    started = tmp_path / "started"

    def sleeper(trail_env, context):
        started.write_text("yes")
        time.sleep(60)

    read_end, write_end = os.pipe()  # close-on-exec, as subprocess's own
    try:
        client = serve(Step(sleeper, name="sleeper"), executor="process")
        client.start()
        wait_until(started.exists, "the step to start")
        os.close(write_end)
        write_end = -1
        ready, _, _ = select.select([read_end], [], [], 20)
        assert ready and os.read(read_end, 1) == b"", "the step's process holds the pipe"
        assert client.status(fields=["State"])[0]["State"] == "Running"
        client.interrupt(dry_run=False)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_interrupting_a_thread_step_that_waits_for_input(serve):
    caught = []

    def ask(trail_env, context):
        try:
            return trail_env.input("name?")
        except StepInterruptedError as exc:
            caught.append(exc)
            raise

    client = serve(Step(ask), executor="thread")
    client.start()
    wait_until(client.steps_waiting_for_user_input, "the prompt")
    client.interrupt(dry_run=False)
    assert states(client) == {"ask": "Interrupted"}
    wait_until(lambda: caught, "the step to see the interrupt")
    client.resume(dry_run=False)
    wait_until(client.steps_waiting_for_user_input, "the prompt again")
    client.send_message_to_steps("ada", dry_run=False)
    wait_states(client, {"ask": "Succeeded"})


def test_input_timeout(serve, executor):
    def ask(trail_env, context):
        try:
            trail_env.input("anyone?", timeout=0.2)
        except TimeoutError as exc:
            return str(exc)

    client = serve(Step(ask), executor=executor)
    client.start()
    wait_states(client, {"ask": "Succeeded"})
    assert client.status()[0]["Return value"] == "no reply to 'anyone?' within 0.2 s"


def test_a_step_that_closes_its_channel_and_lingers_does_not_cost_the_server_a_descriptor():
    """A step that daemonizes (closes every descriptor) but keeps running: its pipe is
    closed on end of input, and closing the executor must not close that number again,
    which by then belongs to something else of the server's (it aborted ZeroMQ)."""
    import select

    from trail.layer1.executors.process import ProcessExecutor

    executor = ProcessExecutor()
    later: list[Any] = []
    executor.bind(lambda message: None, lambda delay, call: later.append(call))

    def daemonish(trail_env: Any, context: Any) -> None:
        os.closerange(3, 65536)
        time.sleep(30)

    trail_env = executor.prepare(1)
    fd = executor.start(1, daemonish, (trail_env, None), {})
    while True:
        select.select([fd], [], [], 10)
        if executor.collect(fd):
            break
    assert later, "the step still runs: it is looked at again later"
    reused = os.open(os.devnull, os.O_RDONLY)
    try:
        assert reused == fd  # the number was free again, and now it is someone else's
        executor.close(grace=0.5)
        os.fstat(reused)  # still open
    finally:
        os.close(reused)


def test_what_steps_print_goes_to_the_step_output_file_under_either_executor(
        serve, executor, tmp_path, capsys):
    """`trail run` gives its log file as step_output: a step's prints must not land on the
    terminal the live view draws on, while the rest of the process still prints there."""
    log = tmp_path / "steps.log"

    def chatty(trail_env, context):
        print(f"printed by a {executor} step")
        print("and to stderr", file=sys.stderr)
        return "done"

    client = serve(Step(chatty, name="chatty"), executor=executor, step_output=str(log))
    client.start()
    wait_states(client, {"chatty": "Succeeded"})
    print("printed by the test")
    text = log.read_text()
    assert f"printed by a {executor} step" in text and "and to stderr" in text
    captured = capsys.readouterr()
    assert "printed by the test" in captured.out
    assert "step" not in captured.out and "stderr" not in captured.err


def tidy_stopper(trail_env, context):
    """Works until interrupted, then cleans up for a moment, says so and reports."""
    stop = threading.Event()
    take_back = trail_env.on_interrupt(stop.set)
    try:
        while not stop.wait(0.05):
            pass
        time.sleep(0.3)  # its cleanup: the manager keeps listening meanwhile
        trail_env.output("cleaned up")
        trail_env.report_stop("db1", True, "the job ended")
    finally:
        take_back()
    raise StepInterruptedError("stopped")


def next_stopped(stream: Any) -> Any:
    """The next ``stopped`` event on the stream (within a generous deadline)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        event = stream.next(1)
        if event is not None and event["kind"] == "stopped":
            return event
    raise AssertionError("no stopped event came")


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_a_stopped_step_is_heard_until_it_ends_and_says_how_its_stop_went(serve, executor):
    """After interrupt, what the step says while it stops is kept (its output, its stop
    report), and its run's ``stopped`` event comes once it has ended. In a process of its
    own, a step with an interrupt hook gets the SIGTERM as a call of its hook."""
    client = serve(Step(tidy_stopper, name="tidy", kill_grace=5), executor=executor)
    with client.subscribe() as stream:
        client.start()
        wait_states(client, {"tidy": "Running"})
        time.sleep(0.2)  # into its loop
        client.interrupt(dry_run=False)
        stopped = next_stopped(stream)
    assert stopped["ended"], stopped
    assert stopped["reports"] == [{"where": "db1", "confirmed": True,
                                   "detail": "the job ended"}]
    output = client.status(name="tidy", fields=["Output messages"])[0]["Output messages"]
    assert output[-2:] == ["cleaned up", "[trail] stopped on db1: the job ended"]
    assert states(client) == {"tidy": "Interrupted"}


def test_a_stopped_thread_step_that_never_ends_is_given_up_after_its_grace(serve):
    """A thread cannot be killed: its run is given up (``ended`` false) after the grace
    period, and what it says later is dropped."""
    release, said = threading.Event(), threading.Event()

    def stubborn(trail_env, context):
        release.wait(30)
        trail_env.output("too late")
        said.set()

    client = serve(Step(stubborn, name="stubborn", kill_grace=0.5), executor="thread")
    try:
        with client.subscribe() as stream:
            client.start()
            wait_states(client, {"stubborn": "Running"})
            client.interrupt(dry_run=False)
            stopped = next_stopped(stream)
        assert not stopped["ended"] and stopped["reports"] == []
    finally:
        release.set()
    assert said.wait(10)
    client.status(name="stubborn")  # a wake-up of the loop after the line came ...
    client.status(name="stubborn")  # ... and one after that, which collected it
    output = client.status(name="stubborn", fields=["Output messages"])[0]["Output messages"]
    assert "too late" not in output
