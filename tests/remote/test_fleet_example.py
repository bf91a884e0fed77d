"""examples/fleet.py, run by the real `trail run` against the tests' sshd: three "hosts",
restarted one at a time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_fleet_runbook_restarts_every_host_one_at_a_time(sshd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRAIL_HOSTS": "db1 db2 db3",
           "TRAIL_SSH_CONFIG": str(sshd.config)}
    result = subprocess.run(
        [sys.executable, "-m", "trail", "run", str(ROOT / "examples" / "fleet.py"),
         "--auto-answer", "--plain"],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "finished: 10 Succeeded" in out
    for host in ("db1", "db2", "db3"):
        assert f"restart@{host}" in out and f"verify@{host}" in out
    # One at a time: each restart ends before the next one starts.
    lines = out.splitlines()
    order = [line for line in lines
             if "[STDOUT] -- stopping app on" in line or "[STDOUT] -- app started" in line]
    assert len(order) == 6
    assert ["stopping" in line for line in order] == [True, False] * 3, "\n".join(order)
