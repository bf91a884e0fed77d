"""Remote steps: what trail adds to a command run over ssh, as ratios to bare ssh.

    python benchmarks/bench_remote.py [--rounds 3] [--only cold100,warm100,...]
    python benchmarks/bench_remote.py --classic [--steps 20] [--fan 20]

Fleet scenarios (the default), each against its floor measured in the same run,
interleaved over ``--rounds`` and reported as medians: `trail run --plain` of a runbook
(so trail's start-up counts) against N bare ``ssh`` started at once:
- cold100, cold10: one command (``true``) on 100 / 10 hosts, no connection up before;
- warm100: the same over master connections already up (ControlMaster), both sides;
  apart: trail served in this process (its start-up left out), and the hosts' side alone
  (bare ssh running the stop wrapper); and this side's CPU;
- rolling50: drain, restart, check on 50 hosts, 10 hosts at a time (a shared pool, with
  priorities so that a host under way finishes first); floor: 10 workers running the 3
  commands of a host one after another with bare ssh;
- stop50: 50 hosts running ``sleep 30``, SIGTERM to `trail run` once all have started:
  seconds to nothing left on the hosts, and how many are left; floor: SIGTERM to 50 bare
  ssh (ssh without a terminal passes no hang-up: all 50 are left);
- memory100: the memory (PSS) of trail run's whole local process tree (trail run, step
  processes, ssh, and the ssh masters its commands opened; its peak) while 100 hosts
  run ``sleep 8``, against 100 bare ssh.
Not by default: asyncssh100, asyncssh10 (benchmarks/remote_asyncssh.py): an in-process
client, asyncssh in one event loop, against the same floor, cold and warm, wall and CPU.
The hosts h1..hN are all the tests' private sshd on loopback.

Starts the tests' private sshd on loopback (tests/remote/sshd.py), so the figures are
ssh's own cost (key exchange, a session, a remote shell) plus trail's, with no network.
Floors: ``ssh host true`` run one after another, and the same started all at once.
trail: a chain of RemoteCommand("true") steps, and a fan of them, from start() to the last
step's Succeeded event. Also: how long after interrupt() the remote command is gone.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import functools
import os
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import trail  # noqa: E402
from benchmarks.bench_engine import ms, run_time  # noqa: E402
from tests.remote.sshd import ALIASES, Sshd, fleet  # noqa: E402
from trail import RemoteCommand, Step, TrailClient, TrailServer, on_hosts  # noqa: E402
from trail.layer2.steps.ssh import Target  # noqa: E402
from trail.layer2.steps.wrapper import new_tag, preamble, wrapped_argv  # noqa: E402


def bare(sshd: Sshd, host: str) -> list[str]:
    return ["ssh", *sshd.options, "-T", "-o", "BatchMode=yes", host, "true"]


def sequential_floor(sshd: Sshd, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        subprocess.run(bare(sshd, ALIASES[i % len(ALIASES)]), check=True)
    return (time.perf_counter() - started) / count


def parallel_floor(sshd: Sshd, count: int) -> float:
    started = time.perf_counter()
    running = [subprocess.Popen(bare(sshd, ALIASES[i % len(ALIASES)])) for i in range(count)]
    for process in running:
        assert process.wait() == 0
    return time.perf_counter() - started


def remote(sshd: Sshd, i: int, extra: list[str] | None = None) -> Step:
    host = ALIASES[i % len(ALIASES)]
    return Step(RemoteCommand(f"r{i}", "true", host=host,
                              ssh_options=[*sshd.options, *(extra or [])]), name=f"r{i}")


def stop_latency(sshd: Sshd, rounds: int) -> list[float]:
    """Seconds from interrupt() returning to no process of the command left on the host."""
    times = []
    for _ in range(rounds):
        marker = f"trail-bench-{uuid.uuid4().hex}"
        command = f"sh -c 'sleep 600; :' {marker}"
        step = Step(RemoteCommand("long", command, host="db1", ssh_options=sshd.options),
                    name="long")
        server = TrailServer(step, journal=False)
        server.serve(threaded=True)
        client = TrailClient(server.socket_file, timeout=30)
        pattern = f"sleep 600; : {marker}"
        try:
            client.start()
            while not subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout:
                time.sleep(0.005)
            client.interrupt(dry_run=False)
            started = time.perf_counter()
            while subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout:
                time.sleep(0.002)
            times.append(time.perf_counter() - started)
        finally:
            client.shutdown(dry_run=False)
            server.join(30)
    return times




# --- fleet scenarios --------------------------------------------------------------------

ROOT = Path(__file__).parents[1]


def bare_argv(sshd: Sshd, host: str, command: str, extra: list[str] | None = None) -> list[str]:
    return ["ssh", *sshd.options, *(extra or []), "-T", "-o", "BatchMode=yes", host, command]


def at_once(argvs: list[list[str]]) -> float:
    """Seconds for these commands, all started at once, to end (each must succeed)."""
    started = time.perf_counter()
    running = [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for argv in argvs]
    for process in running:
        assert process.wait() == 0
    return time.perf_counter() - started


def runbook(body: str, sshd: Sshd, extra: list[str] | None = None) -> Path:
    path = Path(tempfile.mkdtemp(prefix="trail-bench-book-")) / "book.py"
    path.write_text("from trail import RemoteCommand, Step, on_hosts\n"
                    f"OPTIONS = {[*sshd.options, *(extra or [])]!r}\n"
                    "HOSTS = [f'h{i}' for i in range(1, 101)]\n" + body)
    return path


def trail_env(runtime: str) -> dict[str, str]:
    """A fresh runtime directory: trail's sockets and its shared ssh connections are new."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "XDG_RUNTIME_DIR": runtime}


def trail_run_argv(book: Path, runtime: str) -> list[str]:
    # A generous client timeout: 100 steps starting at once on a loaded machine.
    return [sys.executable, "-m", "trail", "--timeout", "60", "run", str(book), "--plain",
            "--journal", os.path.join(runtime, "journal.sqlite3")]


def end_masters(directory: str) -> None:
    """End the ssh master connections whose sockets are under ``directory`` (by pid)."""
    found = subprocess.run(["pgrep", "-f", directory], capture_output=True, text=True)
    for pid in found.stdout.split():
        if int(pid) != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)


def trail_time(book: Path) -> float:
    """Seconds of `trail run --plain book` (which must succeed), from a cold start."""
    runtime = tempfile.mkdtemp(prefix="trail-bench-rt-")
    try:
        started = time.perf_counter()
        done = subprocess.run(trail_run_argv(book, runtime), env=trail_env(runtime),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=300)  # a failed step would wait for an operator
        took = time.perf_counter() - started
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return took
    finally:
        end_masters(runtime)
        shutil.rmtree(runtime, ignore_errors=True)


def report(name: str, floor: list[float], trail: list[float], unit: str = "s",
           what: str = "trail") -> None:
    f, t = statistics.median(floor), statistics.median(trail)
    print(f"{name:<34} floor {f:8.3f} {unit}  {what} {t:8.3f} {unit}  ratio {t / f:5.2f}x"
          f"   (rounds: floor {' '.join(f'{x:.2f}' for x in floor)}; "
          f"{what} {' '.join(f'{x:.2f}' for x in trail)})", flush=True)


def wrapped_at_once(sshd: Sshd, hosts: list[str], command: str,
                    extra: list[str] | None = None) -> float:
    """Seconds for ``command`` on each host, all started at once, as trail runs it there
    (bare ssh, and on the host its stop wrapper: the loader on the command line, the
    wrapper and its watcher on the input), without trail on this side."""
    started = time.perf_counter()
    running = []
    for host in hosts:
        tag = new_tag()
        target = Target(host=host, ssh_options=tuple(sshd.options))
        argv = bare_argv(sshd, host, shlex.join(wrapped_argv(target, command, tag, 2.0)),
                         extra)
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        assert process.stdin is not None
        process.stdin.write(preamble(None))
        process.stdin.flush()
        running.append(process)
    for process in running:  # the input stays open until the command ends, as in trail
        assert process.wait() == 0
        assert process.stdin is not None
        process.stdin.close()
    return time.perf_counter() - started


# --- CPU: this machine's side, and the hosts' (the sshd and what it runs) ---------------

Sample = tuple[float, float, float]  # wall, this side's CPU, sshd's CPU (seconds)


def cpu_here() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _processes() -> tuple[dict[int, int], dict[int, int]]:
    """Each process's parent, and its CPU ticks (its own and its reaped children's)."""
    parents: dict[int, int] = {}
    spent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            spent[int(entry)] = sum(int(x) for x in fields[11:15])
    return parents, spent


def _tree(root: int, parents: dict[int, int]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return found


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its descendants, alive or reaped (cutime, cstime)."""
    parents, spent = _processes()
    return sum(spent.get(pid, 0) for pid in _tree(root, parents)) / os.sysconf("SC_CLK_TCK")


def settle(sshd: Sshd, processes: int) -> None:
    """Wait until sshd's tree is down to ``processes`` (the sessions' shells reaped: only
    then is their CPU in their parent's figures)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(_tree(sshd.process.pid, _processes()[0])) <= processes:
            return
        time.sleep(0.02)


def sample(sshd: Sshd, run: Callable[[], object]) -> Sample:
    """Wall and CPU of ``run``, on this side and in sshd's tree, which is back to where it
    was before the figures are read."""
    before = len(_tree(sshd.process.pid, _processes()[0]))
    here, there = cpu_here(), tree_cpu(sshd.process.pid)
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    settle(sshd, before)
    return wall, cpu_here() - here, tree_cpu(sshd.process.pid) - there


def cold(sshd: Sshd, count: int, rounds: int) -> None:
    book = runbook(f"trail = on_hosts(HOSTS[:{count}], 'true', name='one', "
                   "ssh_options=OPTIONS)\n", sshd)
    hosts = fleet(count)
    floor, trail, wrapped = [], [], []
    for _ in range(rounds):
        floor.append(at_once([bare_argv(sshd, h, "true") for h in hosts]))
        wrapped.append(wrapped_at_once(sshd, hosts, "true"))
        trail.append(trail_time(book))
    report(f"one command, {count} hosts, cold", floor, trail)
    # On loopback every host is this machine: the stop wrapper's processes on the hosts
    # share the cores with trail and ssh, where on a fleet each host runs its own.
    report("  the hosts' side alone", floor, wrapped,
           what="bare ssh running trail's stop wrapper")


def warm(sshd: Sshd, count: int, rounds: int) -> None:
    shared = tempfile.mkdtemp(prefix="cm-", dir="/tmp")
    mux = ["-o", f"ControlPath={shared}/%n"]  # a master per host name
    hosts = fleet(count)
    masters = [subprocess.Popen(bare_argv(sshd, h, "true", [*mux, "-o", "ControlMaster=yes",
                                                              "-o", "ControlPersist=600"]))
               for h in hosts]
    for master in masters:
        assert master.wait() == 0
    book = runbook(f"trail = on_hosts(HOSTS[:{count}], 'true', name='one', "
                   "ssh_options=OPTIONS)\n", sshd, mux)
    try:
        floor, trail, served, hosts_side = [], [], [], []
        for _ in range(rounds):
            argvs = [bare_argv(sshd, h, "true", mux) for h in hosts]
            floor.append(sample(sshd, functools.partial(at_once, argvs)))
            trail.append(sample(sshd, functools.partial(trail_time, book)))
            served.append(served_time(sshd, hosts, mux))
            hosts_side.append(wrapped_at_once(sshd, hosts, "true", mux))
        report(f"one command, {count} hosts, warm", [s[0] for s in floor], [s[0] for s in trail])
        # Apart: trail's start-up (a server already serving here: start() to the end), and
        # what the hosts run (bare ssh running the stop wrapper), which on loopback shares
        # this machine's cores.
        report("  served here, start-up apart", [s[0] for s in floor], served,
               what="trail in-process")
        report("  the hosts' side alone", [s[0] for s in floor], hosts_side,
               what="bare ssh running trail's stop wrapper")
        # On a fleet each host runs its own side: this side's CPU apart. (The hosts' side
        # cannot be read here: each session's few ms go to its connection's sshd, whose
        # /proc figures count whole clock ticks; bench_wrapper.py measures a command's.)
        report("  CPU here (ssh; trail and its ssh)", [s[1] for s in floor],
               [s[1] for s in trail])
    finally:
        end_masters(shared)


def served_time(sshd: Sshd, hosts: list[str], extra: list[str]) -> float:
    """Seconds from start() to the end of one command on each host, run by a TrailServer
    already serving in this process (so trail run's start-up is not in it)."""
    runtime = tempfile.mkdtemp(prefix="trail-bench-rt-")
    old = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = runtime  # its shared ssh connections are new too
    try:
        server = TrailServer(on_hosts(hosts, "true", name="one",  # as the runbook has it
                                      ssh_options=[*sshd.options, *extra]))
        server.serve(threaded=True)
        client = TrailClient(server.socket_file, timeout=60)
        started = time.perf_counter()
        client.start()
        ended = server.wait(120)
        took = time.perf_counter() - started
        assert ended == {"Succeeded": len(hosts)}, ended
        client.shutdown(dry_run=False)
        server.join(30)
        return took
    finally:
        if old is None:
            del os.environ["XDG_RUNTIME_DIR"]
        else:
            os.environ["XDG_RUNTIME_DIR"] = old
        end_masters(runtime)
        shutil.rmtree(runtime, ignore_errors=True)


def rolling(sshd: Sshd, count: int, width: int, rounds: int) -> None:
    book = runbook(f"""
N = {count}
trail = []
for i, host in enumerate(HOSTS[:N]):
    chain = [Step(RemoteCommand(f"{{phase}}@{{host}}", "true", host=host, ssh_options=OPTIONS),
                  name=f"{{phase}}@{{host}}", pool="fleet", pool_size={width},
                  priority=rank * 1000 + N - i)
             for rank, phase in enumerate(("drain", "restart", "check"))]
    trail += [(chain[0], chain[1]), (chain[1], chain[2])]
""", sshd)
    hosts = fleet(count)

    def floor_once() -> float:
        queue = list(hosts)
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    host = queue.pop(0)
                for _ in range(3):
                    subprocess.run(bare_argv(sshd, host, "true"), check=True,
                                   stdin=subprocess.DEVNULL)
        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(width)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    floor, trail = [], []
    for _ in range(rounds):
        floor.append(floor_once())
        trail.append(trail_time(book))
    report(f"drain/restart/check {count} hosts by {width}", floor, trail)


def left_on_hosts(marker: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop(sshd: Sshd, count: int, rounds: int) -> None:
    hosts = fleet(count)
    times, left_trail, left_floor, confirmed = [], [], [], []
    for _ in range(rounds):
        marker = f"trail-bench-{uuid.uuid4().hex}"
        command = f"sh -c 'sleep 30; :' {marker}"
        pattern = f"sleep 30; : {marker}"
        # Floor: bare ssh, SIGTERM once all have started.
        running = [subprocess.Popen(bare_argv(sshd, h, command), stdin=subprocess.DEVNULL)
                   for h in hosts]
        while len(left_on_hosts(pattern)) < count:
            time.sleep(0.01)
        for process in running:
            process.terminate()
        for process in running:
            process.wait()
        time.sleep(2)
        left_floor.append(len(left_on_hosts(pattern)))
        kill_pids(left_on_hosts(marker))
        # trail
        marker = f"trail-bench-{uuid.uuid4().hex}"
        pattern = f"sleep 30; : {marker}"
        book = runbook(f"trail = on_hosts(HOSTS[:{count}], \"sh -c 'sleep 30; :' {marker}\", "
                       "name='nap', ssh_options=OPTIONS, kill_grace=0.5)\n", sshd)
        runtime = tempfile.mkdtemp(prefix="trail-bench-rt-")
        said = tempfile.TemporaryFile(mode="w+")
        process = subprocess.Popen(trail_run_argv(book, runtime), env=trail_env(runtime),
                                   stdin=subprocess.DEVNULL, stdout=said,
                                   stderr=subprocess.DEVNULL)
        try:
            while len(left_on_hosts(pattern)) < count:
                time.sleep(0.01)
            started = time.perf_counter()
            process.terminate()
            deadline = started + 10
            while left_on_hosts(pattern) and time.perf_counter() < deadline:
                time.sleep(0.005)
            times.append(time.perf_counter() - started)
            assert process.wait(60) == 3
            left_trail.append(len(left_on_hosts(pattern)))
            said.seek(0)
            counted = re.search(r"(\d+) of (\d+) host\(s\) confirmed the stop", said.read())
            confirmed.append(counted.group(0).split(" host")[0] if counted else "none said")
        finally:
            said.close()
            kill_pids(left_on_hosts(marker))
            end_masters(runtime)
            shutil.rmtree(runtime, ignore_errors=True)
    print(f"stop {count} x sleep 30 (SIGTERM)          trail: nothing left after "
          f"{statistics.median(times):.3f} s (median), left on hosts {left_trail}, hosts "
          f"that confirmed the stop {confirmed}; "
          f"floor (bare ssh): left {left_floor}", flush=True)


def pss(pid: int) -> int:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    return 0


def tree_rss(root: int, also: str | None = None) -> int:
    """KiB of memory of ``root`` and all its descendants: their proportional set size (a
    page shared by n processes, as a forked step shares the server's, counts 1/n in each;
    summed RSS would count it n times)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    seen, todo = set(), [root]
    if also is not None:  # the ssh masters trail's commands started: daemons, not children
        found = subprocess.run(["pgrep", "-f", also], capture_output=True, text=True)
        todo += [int(pid) for pid in found.stdout.split()]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return sum(pss(pid) for pid in seen)


def memory(sshd: Sshd, count: int, rounds: int) -> None:
    hosts = fleet(count)
    floor, trail = [], []
    for _ in range(rounds):
        marker = f"trail-bench-{uuid.uuid4().hex}"
        command = f"sh -c 'sleep 8; :' {marker}"
        script = ("import subprocess, sys\n"
                  f"ps = [subprocess.Popen({['ssh', *sshd.options, '-T', '-o', 'BatchMode=yes']!r}"
                  f" + [h, {command!r}], stdin=subprocess.DEVNULL) for h in {hosts!r}]\n"
                  "[p.wait() for p in ps]\n")
        process = subprocess.Popen([sys.executable, "-c", script])
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.05)
        floor.append(peak / 1024)
        book = runbook(f"trail = on_hosts(HOSTS[:{count}], {command!r}, name='nap', "
                       "ssh_options=OPTIONS)\n", sshd)
        runtime = tempfile.mkdtemp(prefix="trail-bench-rt-")
        process = subprocess.Popen(trail_run_argv(book, runtime), env=trail_env(runtime),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        peak = 0
        try:
            while process.poll() is None:
                peak = max(peak, tree_rss(process.pid, also=runtime))
                time.sleep(0.05)
        finally:
            end_masters(runtime)
            shutil.rmtree(runtime, ignore_errors=True)
        trail.append(peak / 1024)
    report(f"memory (PSS), {count} hosts running", floor, trail, "MiB")


SCENARIOS = ("cold100", "cold10", "warm100", "rolling50", "stop50", "memory100")
# Not run by default: an in-process client (asyncssh, if installed) against the floor.
MORE = ("asyncssh100", "asyncssh10")


def fleet_main(options: argparse.Namespace) -> None:
    sshd = Sshd(Path(tempfile.mkdtemp(prefix="trail-bench-sshd-")), bench_user())
    chosen = options.only.split(",") if options.only else SCENARIOS
    rounds = options.rounds
    try:
        for name in chosen:
            if name == "cold100":
                cold(sshd, 100, rounds)
            elif name == "cold10":
                cold(sshd, 10, rounds)
            elif name == "warm100":
                warm(sshd, 100, rounds)
            elif name == "rolling50":
                rolling(sshd, 50, 10, rounds)
            elif name == "stop50":
                stop(sshd, 50, rounds)
            elif name == "memory100":
                memory(sshd, 100, rounds)
            elif name in MORE:
                from benchmarks.remote_asyncssh import asyncssh_scenario

                asyncssh_scenario(sshd, int(name.removeprefix("asyncssh")), rounds)
            else:
                raise SystemExit(f"no scenario {name!r}: {', '.join(SCENARIOS + MORE)}")
    finally:
        sshd.stop()


BENCH_USER = "trail-bench"


def bench_user() -> str | None:
    """The hosts' account: as root, ``trail-bench``, a plain /bin/sh account (made if
    missing), as the issue's figures were taken, so that a login costs what ssh and sh
    cost. Root's own login shell may run anything first (here its .bashrc started pyenv at
    every login: 100 logins at once took 11 s instead of 4). Not root: this user."""
    if os.geteuid() != 0:
        return None
    if subprocess.run(["id", BENCH_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", BENCH_USER],
                       check=True)
        print(f"made the account {BENCH_USER} (/bin/sh) for the hosts' logins", flush=True)
    # No password, yet not locked ("!"): sshd refuses a locked account even a key login.
    subprocess.run(["usermod", "-p", "*", BENCH_USER], check=True)
    return BENCH_USER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classic", action="store_true",
                        help="the chain, fan and stop-latency figures of one host")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated: " + ", ".join(SCENARIOS)
                        + " (the default); also " + ", ".join(MORE))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--fan", type=int, default=20)
    parser.add_argument("--stops", type=int, default=5)
    options = parser.parse_args()
    # trail's modules byte-compiled, as an install leaves them: where PYTHONDONTWRITEBYTECODE
    # is set an editable install would compile them again in every `trail run` timed here.
    compileall.compile_dir(Path(trail.__file__).parent, quiet=1)
    if not options.classic:
        fleet_main(options)
        return
    sshd = Sshd(Path(tempfile.mkdtemp(prefix="trail-bench-sshd-")), bench_user())
    try:
        floor = sequential_floor(sshd, options.steps)
        print(f"floor  ssh host true, one after another   {ms(floor)} each")
        wide = parallel_floor(sshd, options.fan)
        print(f"floor  {options.fan} x ssh host true at once         {ms(wide)} in all")
        print()
        steps = [remote(sshd, i) for i in range(options.steps)]
        chain = list(zip(steps, steps[1:], strict=False))
        for executor in ("process", "thread"):
            each = run_time(chain, executor, f"r{options.steps - 1}") / options.steps
            print(f"chain of {options.steps} RemoteCommands, {executor:7}  {ms(each)} each, "
                  f"{each / floor:5.2f}x bare ssh")
        shared = tempfile.mkdtemp(prefix="cm-", dir="/tmp")
        mux = ["-o", "ControlMaster=auto", "-o", f"ControlPath={shared}/%C",
               "-o", "ControlPersist=60"]
        steps = [remote(sshd, i, mux) for i in range(options.steps)]
        chain = list(zip(steps, steps[1:], strict=False))
        each = run_time(chain, "process", f"r{options.steps - 1}") / options.steps
        print(f"the same, sharing connections (ControlMaster)  {ms(each)} each, "
              f"{each / floor:5.2f}x bare ssh")
        for host in ALIASES:
            subprocess.run(["ssh", *sshd.options, *mux, "-O", "exit", host],
                           capture_output=True)
        fan = [remote(sshd, i) for i in range(options.fan)]
        head = Step(lambda env, ctx: None, name="head")
        tail = Step(lambda env, ctx: None, name="tail")
        total = run_time([(head, s) for s in fan] + [(s, tail) for s in fan], "process",
                         "tail")
        print(f"fan of {options.fan} RemoteCommands, process  {ms(total)} in all, "
              f"{total / wide:5.2f}x bare ssh at once")
        print()
        stops = stop_latency(sshd, options.stops)
        print(f"interrupt() to no process left on the host: median {ms(statistics.median(stops))}"
              f", max {ms(max(stops))} ({options.stops} runs)")
    finally:
        sshd.stop()


if __name__ == "__main__":
    main()
