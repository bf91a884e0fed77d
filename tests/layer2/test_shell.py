"""ShellCommand on the real engine: streaming, failures, interrupt and timeouts kill the
whole process group."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

from tests.support import (
    crash_while_running,
    pid_alive,
    require_root,
    states,
    wait_pids,
    wait_states,
    wait_until,
)
from trail import ShellCommand, ShellCommandFailedError, Step


def test_output_is_streamed_while_the_command_runs_and_interrupt_leaves_no_process(
    serve, executor, tmp_path
):
    script = (f"sleep 60 & echo $! > {tmp_path}/kid; echo $$ > {tmp_path}/pid; "
              f"echo first line; wait")
    client = serve(Step(ShellCommand("long", script, shell=True)), executor=executor)
    client.start()
    wait_until(lambda: "[STDOUT] -- first line" in client.status()[0]["Output messages"],
               "the first line to show while the command runs")
    assert client.status()[0]["State"] == "Running"
    pids = [*wait_pids(tmp_path / "kid", "the child's pid"),
            *wait_pids(tmp_path / "pid", "the command's pid")]
    assert all(pid_alive(p) for p in pids)
    client.interrupt(dry_run=False)
    wait_states(client, {"long": "Interrupted"})
    # Generous for a loaded machine (a Dask worker's step under load took over 5 s once);
    # the manager's own group kill, 8 s after the stop, counts too: nothing is left either
    # way. (Stops through the wrapper alone: tests/remote/test_fleet_stop.py.)
    wait_until(lambda: not any(pid_alive(p) for p in pids), "the command's processes to go",
               timeout=15)


def test_success_returns_exit_code_and_output(serve, executor):
    step = Step(ShellCommand("greet", "printf '{word}\\n\\nsecond\\n'"), name="greet")
    client = serve(step, context={"word": "hello"}, executor=executor)
    client.start()
    wait_states(client, {"greet": "Succeeded"})
    row = client.status()[0]
    # AutoTrail's text is the return value everyone sees ...
    assert row["Return value"] == ("[Command: printf 'hello\\n\\nsecond\\n'] -- Succeeded "
                                   "with exit code: 0.")
    assert row["Output messages"] == [
        "[Command: printf 'hello\\n\\nsecond\\n'] -- Starting.",
        "[STDOUT] -- hello",
        "[STDOUT] -- second",
        "[Command: printf 'hello\\n\\nsecond\\n'] -- Succeeded with exit code: 0.",
    ]


def keep_facts(trail_env, context, result):
    """A post-processor that shows what the ShellResult carries besides its text."""
    return {"text": str(result), "is_str": isinstance(result, str),
            "exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
            "by_key": [result["exit_code"], result["stdout"]], "command": result.command}


def test_the_result_is_autotrails_text_and_keeps_code_and_output(serve, executor):
    shell = ShellCommand("both", ["sh", "-c", "echo out; echo err >&2"])
    client = serve(Step(shell, name="both", post_processor=keep_facts), executor=executor)
    client.start()
    wait_states(client, {"both": "Succeeded"})
    value = client.status()[0]["Return value"]
    assert value == {"text": "[Command: sh -c 'echo out; echo err >&2'] -- Succeeded with "
                             "exit code: 0.", "is_str": True, "exit_code": 0,
                     "stdout": ["out"], "stderr": ["err"], "by_key": [0, ["out"]],
                     "command": "sh -c 'echo out; echo err >&2'"}


def test_shell_command_failed_error_takes_autotrails_one_message():
    error = ShellCommandFailedError("the disk is full")
    assert str(error) == "the disk is full" and error.exit_code is None
    assert isinstance(error, RuntimeError)
    full = ShellCommandFailedError("false", 1, "oops")
    assert str(full) == "[Command: false] -- Failed with exit code: 1, STDERR (Last line): oops"


def test_failure_by_exit_code_names_command_code_and_last_stderr_line(serve, executor):
    command = ["sh", "-c", "echo warming up >&2; echo disk full >&2; exit 3"]
    client = serve(Step(ShellCommand("fail", command), name="fail"), executor=executor)
    client.start()
    wait_states(client, {"fail": "Paused due to failure"})
    value = client.status()[0]["Return value"]
    assert value == ("ShellCommandFailedError: [Command: sh -c 'echo warming up >&2; echo "
                     "disk full >&2; exit 3'] -- Failed with exit code: 3, STDERR (Last line): "
                     "disk full")


def test_a_fatal_stderr_line_fails_the_step_even_when_more_output_follows(serve, executor):
    command = "echo 'FATAL: replica lost' >&2; sleep 0.3; echo 'just a warning' >&2; echo done"
    shell = ShellCommand("fatal", command, shell=True,
                         is_error_fatal=lambda line: line.startswith("FATAL"))
    client = serve(Step(shell, name="fatal"), executor=executor)
    client.start()
    wait_states(client, {"fatal": "Paused due to failure"})
    value = client.status()[0]["Return value"]
    assert "Failed with exit code: 0" in value
    assert value.endswith("STDERR (Last line): FATAL: replica lost")


def test_ignorable_exit_codes_and_output(serve):
    shell = ShellCommand("grep", ["sh", "-c", "echo noise; echo keep; exit 1"],
                         is_exit_code_ignorable=lambda code: code in (0, 1),
                         is_output_ignorable=lambda line: line == "noise")
    client = serve(Step(shell, name="grep"))
    client.start()
    wait_states(client, {"grep": "Succeeded"})
    row = client.status()[0]
    assert row["Return value"].endswith("-- Succeeded with exit code: 1.")
    assert [m for m in row["Output messages"] if m.startswith("[STDOUT]")] == [
        "[STDOUT] -- keep"]


def test_the_commands_own_timeout_kills_its_group(serve, executor, tmp_path):
    script = f"sh -c 'trap \"\" TERM; sleep 60' & echo $! > {tmp_path}/kid; sleep 60"
    shell = ShellCommand("slow", script, shell=True, timeout=0.5, kill_grace=0.5)
    client = serve(Step(shell, name="slow"), executor=executor)
    client.start()
    [kid] = wait_pids(tmp_path / "kid", "the command to start")
    wait_states(client, {"slow": "Paused due to failure"})
    assert "Timed out after 0.5 s" in client.status()[0]["Return value"]
    wait_until(lambda: not pid_alive(kid), "the TERM-ignoring grandchild to be killed",
               timeout=5)


def test_a_step_timeout_kills_the_command(serve, executor, tmp_path):
    script = f"echo $$ > {tmp_path}/pid; exec sleep 60"
    client = serve(Step(ShellCommand("nap", script, shell=True), name="nap", timeout=2,
                        kill_grace=0.5), executor=executor)
    client.start()
    [pid] = wait_pids(tmp_path / "pid", "the command to start")
    wait_states(client, {"nap": "Paused due to failure"})
    wait_until(lambda: not pid_alive(pid), "the command to be stopped", timeout=5)


def test_no_orphans_after_many_interrupts(serve, tmp_path):
    count = 10
    steps = [Step(ShellCommand(f"s{i}", f"echo $$ > {tmp_path}/{i}; sleep 60 & wait",
                               shell=True), name=f"s{i}") for i in range(count)]
    client = serve(steps)
    client.start()
    files = [tmp_path / str(i) for i in range(count)]
    pids = [pid for f in files for pid in wait_pids(f, "every command to start")]
    time.sleep(0.1)
    client.interrupt(dry_run=False)
    wait_until(lambda: not any(pid_alive(p) for p in pids), "every command to be gone",
               timeout=10)


def test_a_command_that_cannot_start_fails_clearly(serve, tmp_path):
    steps = [Step(ShellCommand("missing", "/no/such/program --flag"), name="missing"),
             Step(ShellCommand("unknown", "no-such-program-here x"), name="unknown"),
             Step(ShellCommand("nowhere", "true", cwd=str(tmp_path / "gone")), name="nowhere")]
    client = serve(steps)
    client.start()
    wait_states(client, dict.fromkeys(["missing", "unknown", "nowhere"],
                                      "Paused due to failure"))
    values = {row["Name"]: row["Return value"] for row in client.status()}
    assert values["missing"].endswith(
        "-- Could not start: no such program: /no/such/program, STDERR (Last line): None")
    assert "-- Could not start: no such program: no-such-program-here," in values["unknown"]
    assert f"-- Could not start: no such directory: {tmp_path / 'gone'}," in values["nowhere"]


def test_sudo_runs_a_local_command_as_the_user_with_its_env_and_stops_all_of_it(
        serve, executor, tmp_path):
    """As another user, the command is out of reach of our signals; it runs under the same
    stop wrapper as a remote one, as that user, which stops its whole group, even a child
    that ignores SIGTERM."""
    require_root()
    marker = f"trail-mark-{uuid.uuid4().hex}"
    command = (f"id -un; echo \"$GREETING\"; pwd; echo pgid=$$; trap '' TERM; "
               f"sh -c 'sleep 600; :' {marker}")
    shell = ShellCommand("as nobody", command, shell=True, sudo_user="nobody", cwd="/tmp",
                         env={"GREETING": "hi there"}, kill_grace=0.5)
    client = serve(Step(shell, name="as nobody"), executor=executor)
    client.start()

    def started() -> list[str]:
        lines = client.status()[0]["Output messages"]
        return lines if any(line.startswith("[STDOUT] -- pgid=") for line in lines) else []

    lines = wait_until(started, "the command to start as nobody")
    assert lines[1:4] == ["[STDOUT] -- nobody", "[STDOUT] -- hi there", "[STDOUT] -- /tmp"]
    pgid = int(lines[4].rsplit("=", 1)[1])
    children = f"sleep 600; : {marker}"
    wait_until(lambda: subprocess.run(["pgrep", "-f", children], capture_output=True).stdout,
               "the child to start")
    client.interrupt(dry_run=False)
    wait_states(client, {"as nobody": "Interrupted"})
    wait_until(lambda: not subprocess.run(["pgrep", "-g", str(pgid)],
                                          capture_output=True).stdout,
               "no process of the command left")


def test_sudo_that_refuses_fails_the_step_without_waiting(serve):
    require_root()
    shell = ShellCommand("sudo", "true", sudo_user="no-such-user-here")
    client = serve(Step(shell, name="sudo"))
    client.start()
    wait_states(client, {"sudo": "Paused due to failure"})
    assert "[Command: true] -- Did not start (exit code 1)" in client.status()[0]["Return value"]


def test_a_sudo_command_stops_even_while_a_forked_step_runs_beside_it(serve, tmp_path):
    """A thread-run sudo command is told to stop by closing its input; a process step
    forked meanwhile must not keep a copy of that input open (it would never close)."""
    require_root()
    marker = f"trail-mark-{uuid.uuid4().hex}"
    shell = ShellCommand("as nobody", f"echo pgid=$$; sh -c 'sleep 600; :' {marker}",
                         shell=True, sudo_user="nobody", kill_grace=0.5)
    started = tmp_path / "started"

    def beside(trail_env, context):
        started.write_text("yes")
        time.sleep(60)

    gate = Step(lambda env, ctx: time.sleep(1), name="gate", executor="thread")
    sudo = Step(shell, name="as nobody", executor="thread")
    other = Step(beside, name="beside", executor="process")
    client = serve([(gate, other), sudo])
    client.start()
    wait_until(started.exists, "the forked step to start after the command")

    def group() -> int | None:
        for line in client.status(name="as nobody")[0]["Output messages"]:
            if line.startswith("[STDOUT] -- pgid="):
                return int(line.rsplit("=", 1)[1])
        return None

    pgid = wait_until(group, "the command to start")
    client.interrupt(dry_run=False, name="as nobody")
    wait_until(lambda: not subprocess.run(["pgrep", "-g", str(pgid)],
                                          capture_output=True).stdout,
               "no process of the command left")
    client.interrupt(dry_run=False, name="beside")


def test_a_crashed_server_leaves_no_command_running(executor, tmp_path):
    """SIGKILL the `trail run` process while a command runs (in a session of its own, out
    of reach of the step's death signal): the command and its child stop all the same,
    rather than run on unwatched while the operator may start it again."""
    book = tmp_path / "book.py"
    book.write_text(
        "from trail import ShellCommand, Step\n"
        "trail = Step(ShellCommand('long', \"echo pgid=$$; sh -c 'sleep 600; :'\",\n"
        "                          shell=True), name='long')\n")
    pgid = crash_while_running(book, tmp_path / "journal.sqlite3", executor)
    wait_until(lambda: not subprocess.run(["pgrep", "-g", str(pgid)],
                                          capture_output=True).stdout,
               "no process of the command left")


def test_without_pidfd_the_wrappers_end_is_noticed_by_polling(serve, tmp_path, monkeypatch):
    """Kernels before 5.3 have no pidfd: a thread-run command whose wrapper is killed
    (interrupt signals the wrapper's group) is still stopped, its end seen by polling."""
    monkeypatch.delattr(os, "pidfd_open")
    script = f"echo $$ > {tmp_path}/pid; trap '' TERM; sleep 600"
    shell = ShellCommand("nap", script, shell=True, kill_grace=0.5)
    client = serve(Step(shell, name="nap"), executor="thread")
    client.start()
    [pgid] = wait_pids(tmp_path / "pid", "the command to start")
    client.interrupt(dry_run=False)
    wait_states(client, {"nap": "Interrupted"})
    wait_until(lambda: not subprocess.run(["pgrep", "-g", str(pgid)],
                                          capture_output=True).stdout,
               "no process of the command left")


def test_a_stopped_runs_late_lines_are_marked_once_its_step_runs_again(serve, tmp_path):
    """Interrupt, then rerun at once: the stopped command's cleanup output, and the line
    saying how it stopped, come while the rerun runs; they are marked, not the rerun's."""
    go = tmp_path / "go"
    command = (f"trap 'echo cleaning; while [ ! -e {go} ]; do sleep 0.05; done; "
               "echo cleaned; exit 1' TERM; echo started; sleep 30 & wait")
    client = serve(Step(ShellCommand("clean", command, shell=True, kill_grace=30),
                        name="clean"))

    def said() -> list[str]:
        return client.status(name="clean", fields=["Output messages"])[0]["Output messages"]
    client.start()
    wait_until(lambda: "[STDOUT] -- started" in said(), "the command to start")
    client.interrupt(dry_run=False)
    wait_until(lambda: "[STDOUT] -- cleaning" in said(), "the stopped command's cleanup")
    client.rerun(name="clean", dry_run=False)
    wait_until(lambda: said().count("[STDOUT] -- started") == 2, "the rerun to start")
    go.touch()
    wait_until(lambda: any("stopped: the command ended" in line for line in said()),
               "the stopped run's last word")
    late = said()[said().index("[STDOUT] -- started", 2):]
    assert late[1:] == ["[stopped run] [STDOUT] -- cleaned",
                        "[stopped run] [trail] stopped: the command ended (exit code 1)"]
    assert states(client) == {"clean": "Running"}  # the rerun goes on
    client.interrupt(dry_run=False)
