"""Terminal escape sequences in what steps say reach no operator's terminal: `trail run
--plain` and `trail history` show them as text (^[ for ESC), and keep the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
BOOK = r'''
from trail import ShellCommand, Step

def loud(trail_env, context):
    trail_env.output("\x1b[2J\x1b[H\x1b]0;owned\x07python says hi\r\x9b6n")
    return "done"

shell = ShellCommand("shell", "printf '\\033[2Jshell says hi\\033[1A\\n'", shell=True)
trail = [(Step(loud), Step(shell, name="shell"))]
'''


def test_escape_sequences_are_shown_not_obeyed(tmp_path):
    book = tmp_path / "book.py"
    book.write_text(BOOK)
    journal = tmp_path / "journal.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "trail", "run", str(book), "--plain",
                          "--journal", str(journal), "--socket", str(tmp_path / "s.sock")],
                         capture_output=True, text=True, timeout=120, env=env,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    history = subprocess.run([sys.executable, "-m", "trail", "history", "1", "--journal",
                              str(journal)], capture_output=True, text=True, timeout=60,
                             env={**env, "COLUMNS": "400"})
    assert history.returncode == 0, history.stderr
    for shown in (run.stdout, history.stdout):
        assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
        assert "\r" not in shown
        assert "^[[2J^[[H^[]0;owned^Gpython says hi^M\\x9b6n" in shown, shown
        assert "^[[2Jshell says hi^[[1A" in shown, shown
