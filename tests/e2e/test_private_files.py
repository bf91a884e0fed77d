"""Everything trail writes is private to its user: journal, its -wal and -shm, the
server's log and step output, the sockets; in 0700 directories when trail makes them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support import RunbookProcess, wait_states

BOOK = '''
from trail import Step

def talk(trail_env, context):
    print("a secret print")
    trail_env.output("a secret output")
    return trail_env.input("password?")

def hold(trail_env, context):
    return trail_env.input("looked enough?")  # keeps the run (and its files) there

trail = Step(talk) >> Step(hold)
'''


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_file_of_a_run_is_0600(tmp_path):
    book = tmp_path / "book.py"
    book.write_text(BOOK)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    server = RunbookProcess(str(book), shared, "talk")
    old = os.umask(0o022)  # a common umask: new files 0644 unless trail says otherwise
    try:
        client = server.start()
    finally:
        os.umask(old)
    try:
        client.start(dry_run=False)
        wait_states(client, {"talk": "Running"})
        client.send_message_to_steps("hunter2", dry_run=False, name="talk")
        wait_states(client, {"talk": "Succeeded", "hold": "Running"})
        files = sorted(p for p in shared.rglob("*") if not p.is_dir())
        names = {str(p.relative_to(shared)) for p in files}
        assert {"journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm",
                "talk.sock", "talk.sock.events", "talk.sock.log",
                "steps/run1-0.log"} <= names, names
        assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}
        assert oct(mode(shared / "steps")) == oct(0o700)  # the step logs' directory
        client.shutdown(dry_run=False)
        assert server.process is not None
        server.process.wait(30)
    finally:
        server.stop()


def test_the_default_directories_are_0700(tmp_path):
    root = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "XDG_RUNTIME_DIR": str(tmp_path / "run"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    (tmp_path / "run").mkdir()
    script = ("from trail.layer1.journal import Journal, default_journal_path\n"
              "from trail.layer1.sockets import new_socket_file\n"
              "print(new_socket_file('x'))\n"
              "j = Journal(default_journal_path()); j.new_run('x', {'steps': [], 'edges': []},"
              " [], None); j.close()\n")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, umask=0o022)
    assert mode(tmp_path / "run" / "trail") == 0o700
    assert mode(tmp_path / "state" / "trail") == 0o700
    for path in (tmp_path / "state" / "trail").iterdir():
        assert mode(path) == 0o600, path
