"""A real OpenSSH server for the tests: on loopback, a high port, its own host key and
authorized key in a temporary directory. No system configuration is read or changed (as
root, sshd needs its privilege-separation directory, /run/sshd, which is created if the
package did not)."""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.support import require, wait_until

ALIASES = ("db1", "db2", "db3")  # three "hosts", all this sshd


def fleet(count: int) -> list[str]:
    """``count`` host names for a fleet, ``h1``..``hN``: every one is this sshd."""
    return [f"h{i}" for i in range(1, count + 1)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keygen(path: Path) -> str:
    subprocess.run([require("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True)
    return (path.with_suffix(".pub")).read_text().strip()


class Sshd:
    """sshd on 127.0.0.1 and an ssh config naming it: ``db1``..``db3`` and ``h1``, ``h2``,
    ... (good: see ``fleet``), ``stranger``
    (a key the server does not know), ``impostor`` (the server's key is not the one known),
    ``closed`` (a port nobody listens on)."""

    def __init__(self, directory: Path, user: str | None = None) -> None:
        """``user``: the account the hosts are logged into (default: this process's). sshd
        reads its authorized keys as that user, so for another one the directory is
        opened to read."""
        self.dir = directory
        self.user = user or getpass.getuser()
        self.port = free_port()
        host_key = keygen(directory / "host_key")
        client_key = keygen(directory / "client_key")
        keygen(directory / "stranger_key")
        other_host_key = keygen(directory / "other_host_key")
        (directory / "authorized_keys").write_text(client_key + "\n")
        if self.user != getpass.getuser():
            directory.chmod(0o755)
            (directory / "authorized_keys").chmod(0o644)
        (directory / "known_hosts").write_text(f"trail-test-sshd {host_key}\n")
        (directory / "wrong_known_hosts").write_text(f"trail-test-sshd {other_host_key}\n")
        self.log = directory / "sshd.log"
        (directory / "sshd_config").write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {directory}/host_key
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
AllowUsers {self.user}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups 100:30:200
MaxSessions 100
ClientAliveInterval 0
""")
        common = f"""\
    HostName 127.0.0.1
    User {self.user}
    IdentitiesOnly yes
    HostKeyAlias trail-test-sshd
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
"""
        self.config = directory / "ssh_config"
        self.config.write_text(f"""\
Host {" ".join(ALIASES)} h*
    Port {self.port}
    IdentityFile {directory}/client_key
    UserKnownHostsFile {directory}/known_hosts
{common}
Host stranger
    Port {self.port}
    IdentityFile {directory}/stranger_key
    UserKnownHostsFile {directory}/known_hosts
{common}
Host impostor
    Port {self.port}
    IdentityFile {directory}/client_key
    UserKnownHostsFile {directory}/wrong_known_hosts
{common}
Host closed
    Port {free_port()}
    IdentityFile {directory}/client_key
    UserKnownHostsFile {directory}/known_hosts
{common}
""")
        if os.getuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.process = subprocess.Popen(
            [require("sshd"), "-D", "-E", str(self.log), "-f", str(directory / "sshd_config")],
            stdin=subprocess.DEVNULL,
        )
        wait_until(self.answers, "the test sshd to accept logins")

    @property
    def options(self) -> list[str]:
        """ssh_options for a ShellCommand: use this config, not the user's."""
        return ["-F", str(self.config)]

    def ssh(self, host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", *self.options, "-o", "BatchMode=yes", host, command],
                              capture_output=True, text=True, timeout=timeout)

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"sshd exited ({self.process.returncode}): "
                                 f"{self.log.read_text() if self.log.exists() else ''}")
        return self.ssh("db1", "true", timeout=10).returncode == 0

    def drop_connections(self) -> None:
        """Cut every open connection, as a network failure would, leaving sshd listening."""
        children = subprocess.run(["pgrep", "-P", str(self.process.pid)],
                                  capture_output=True, text=True).stdout.split()
        for pid in children:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
