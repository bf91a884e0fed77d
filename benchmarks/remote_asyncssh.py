"""bench_remote's asyncssh scenarios: an in-process SSH client against the OpenSSH floor.

    python benchmarks/bench_remote.py --only asyncssh100,asyncssh10 [--rounds 5]

Side by side, interleaved, against the same loopback sshd and host aliases: N bare ``ssh
host true`` started at once (the floor, with the user's default algorithms, and again
with asyncssh's key exchange), the same running trail's stop wrapper, and asyncssh (one
process, one event loop) connecting to the N hosts at once and running ``true``, then the
wrapper (preamble written, exit marker read, input closed). Warm: ssh over master
connections already up (ControlMaster) against asyncssh over connections already open.
For each: wall time, the CPU time of this side (the asyncssh process, or the ssh clients
and the process that started them) and of sshd (the hosts' side, the same cores here).
"""

from __future__ import annotations

import asyncio
import shlex
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

from benchmarks.bench_remote import Sample, bare_argv, end_masters, sample
from tests.remote.sshd import Sshd, fleet
from trail.layer2.steps.ssh import Target
from trail.layer2.steps.wrapper import Markers, new_tag, preamble, wrapped_argv

# What asyncssh negotiates with OpenSSH 9.2 (which has no ML-KEM); OpenSSH's own default
# there is sntrup761x25519-sha512, much dearer. The fair rows give both sides this one.
KEX = "curve25519-sha256"
SAME_KEX = ["-o", f"KexAlgorithms={KEX}"]

def ssh_at_once(argvs: list[list[str]]) -> None:
    running = [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for argv in argvs]
    for process in running:
        assert process.wait() == 0


def ssh_wrapped_at_once(sshd: Sshd, hosts: list[str], extra: list[str]) -> None:
    """bench_remote's wrapped_at_once, with ``extra`` ssh options."""
    running = []
    for host in hosts:
        tag = new_tag()
        script = shlex.join(wrapped_argv(Target(host=host), "true", tag, 2.0))
        process = subprocess.Popen(bare_argv(sshd, host, script, extra), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert process.stdin is not None
        process.stdin.write(preamble(None))
        process.stdin.flush()
        running.append(process)
    for process in running:
        assert process.wait() == 0
        assert process.stdin is not None
        process.stdin.close()


class AsyncsshFleet:
    """asyncssh in one event loop: connections to the sshd's host aliases, read from its
    ssh config (host name, port, user, key, known hosts) as a user's would be."""

    def __init__(self, asyncssh: Any, sshd: Sshd, kex: str | None) -> None:
        self.asyncssh = asyncssh
        self.sshd = sshd
        self.kex = kex
        self.loop = asyncio.new_event_loop()
        self.algorithms: dict[str, str] = {}

    async def connect(self, host: str) -> Any:
        options: dict[str, Any] = {"config": [str(self.sshd.config)]}
        if self.kex is not None:
            options["kex_algs"] = [self.kex]
        return await self.asyncssh.connect(host, **options)

    async def command(self, connection: Any, host: str, wrapped: bool) -> None:
        if not wrapped:
            done = await connection.run("true", check=False, stdin=self.asyncssh.DEVNULL)
            assert done.exit_status == 0, done
            return
        tag = new_tag()
        script = shlex.join(wrapped_argv(Target(host=host), "true", tag, 2.0))
        process = await connection.create_process(script, encoding=None)
        process.stdin.write(preamble(None))
        markers = Markers(tag)
        while markers.exit_code is None:
            line = await process.stderr.readline()
            if not line:
                break
            markers.take(line.decode().rstrip("\n"))
        process.stdin.write_eof()  # the watcher's end of input, as trail closes it
        await process.stdout.read()
        await process.wait()
        assert markers.exit_code == 0 and process.exit_status == 0, markers

    def cold(self, hosts: list[str], wrapped: bool) -> None:
        async def one(host: str) -> None:
            connection = await self.connect(host)
            await self.command(connection, host, wrapped)
            connection.close()
            await connection.wait_closed()

        async def every() -> None:
            await asyncio.gather(*(one(host) for host in hosts))
        self.loop.run_until_complete(every())

    def open(self, hosts: list[str]) -> list[Any]:
        async def every() -> list[Any]:
            return list(await asyncio.gather(*(self.connect(host) for host in hosts)))
        return self.loop.run_until_complete(every())

    def warm(self, connections: list[Any], hosts: list[str], wrapped: bool) -> None:
        async def every() -> None:
            await asyncio.gather(*(self.command(connection, host, wrapped)
                                   for connection, host in zip(connections, hosts,
                                                               strict=True)))
        self.loop.run_until_complete(every())

    def close(self, connections: list[Any]) -> None:
        async def every() -> None:
            for connection in connections:
                connection.close()
            await asyncio.gather(*(connection.wait_closed() for connection in connections))
        self.loop.run_until_complete(every())

    def negotiated(self, host: str) -> dict[str, str]:
        """The algorithms of one connection: key exchange (read through asyncssh's private
        choice function, which has no public getter), cipher, MAC, host key."""
        connection_class = self.asyncssh.connection.SSHConnection
        choose = connection_class._choose_alg
        chosen: dict[str, str] = {}

        def recording(connection: Any, kind: str, ours: Any, theirs: Any) -> bytes:
            algorithm: bytes = choose(connection, kind, ours, theirs)
            chosen[kind] = algorithm.decode()
            return algorithm

        connection_class._choose_alg = recording
        try:
            (connection,) = self.open([host])
        finally:
            connection_class._choose_alg = choose
        chosen["cipher"] = str(connection.get_extra_info("send_cipher"))
        chosen["mac"] = str(connection.get_extra_info("send_mac"))
        chosen["server host key"] = connection.get_server_host_key().get_algorithm()
        self.close([connection])
        return chosen


def show(name: str, samples: list[Sample], floor: float | None,
         fair: float | None) -> float:
    wall = statistics.median(s[0] for s in samples)
    here = statistics.median(s[1] for s in samples)
    there = statistics.median(s[2] for s in samples)
    ratios = "".join(f"  {wall / base:5.2f}x {what}" for base, what in
                     ((floor, "floor"), (fair, "same-kex floor")) if base)
    print(f"  {name:<42} wall {wall:7.3f} s   cpu: this side {here:6.3f} s, sshd "
          f"{there:6.3f} s{ratios}   (walls: {' '.join(f'{s[0]:.2f}' for s in samples)})",
          flush=True)
    return wall


def asyncssh_scenario(sshd: Sshd, count: int, rounds: int) -> None:
    try:
        import asyncssh
    except ImportError:
        print(f"asyncssh{count}: skipped, asyncssh is not installed (pip install asyncssh)",
              flush=True)
        return
    hosts = fleet(count)
    default, same = AsyncsshFleet(asyncssh, sshd, None), AsyncsshFleet(asyncssh, sshd, KEX)
    print(f"asyncssh {asyncssh.__version__}, its default algorithms here: "
          f"{default.negotiated(hosts[0])}", flush=True)
    cases: dict[str, Callable[[], None]] = {
        "ssh, default algorithms (the floor)":
            lambda: ssh_at_once([bare_argv(sshd, h, "true") for h in hosts]),
        f"ssh, {KEX} (same-kex floor)":
            lambda: ssh_at_once([bare_argv(sshd, h, "true", SAME_KEX) for h in hosts]),
        f"ssh, {KEX}, stop wrapper": lambda: ssh_wrapped_at_once(sshd, hosts, SAME_KEX),
        "asyncssh, its default algorithms": lambda: default.cold(hosts, False),
        f"asyncssh, {KEX}": lambda: same.cold(hosts, False),
        f"asyncssh, {KEX}, stop wrapper": lambda: same.cold(hosts, True),
    }
    measured: dict[str, list[Sample]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            measured[name].append(sample(sshd, run))
    print(f"one command, {count} hosts, cold ({rounds} rounds, medians)", flush=True)
    floor = fair = None
    for name, samples in measured.items():
        wall = show(name, samples, floor, fair)
        floor, fair = floor or wall, fair or (wall if "same-kex" in name else None)

    shared = tempfile.mkdtemp(prefix="cm-", dir="/tmp")
    mux = ["-o", f"ControlPath={shared}/%n", *SAME_KEX]
    masters = [subprocess.Popen(bare_argv(sshd, h, "true", [
        *mux, "-o", "ControlMaster=yes", "-o", "ControlPersist=600"])) for h in hosts]
    for master in masters:
        assert master.wait() == 0
    connections = same.open(hosts)
    try:
        warm: dict[str, Callable[[], None]] = {
            "ssh over its masters (floor)":
                lambda: ssh_at_once([bare_argv(sshd, h, "true", mux) for h in hosts]),
            "ssh over its masters, stop wrapper":
                lambda: ssh_wrapped_at_once(sshd, hosts, mux),
            "asyncssh over open connections": lambda: same.warm(connections, hosts, False),
            "asyncssh over open connections, wrapper":
                lambda: same.warm(connections, hosts, True),
        }
        measured = {name: [] for name in warm}
        for _ in range(rounds):
            for name, run in warm.items():
                measured[name].append(sample(sshd, run))
        print(f"one command, {count} hosts, warm ({rounds} rounds, medians)", flush=True)
        floor = None
        for name, samples in measured.items():
            wall = show(name, samples, floor, None)
            floor = floor or wall
    finally:
        same.close(connections)
        end_masters(shared)
