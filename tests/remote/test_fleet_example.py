"""examples/fleet.py, run by the real `trail run` against the tests' sshd: three "hosts",
a canary, then batches of 20% (one host of three), each verified before the next."""

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
    assert "finished: 13 Succeeded" in out
    for host in ("db1", "db2", "db3"):
        assert f"restart@{host}" in out and f"verify@{host}" in out
        assert f"[STDOUT] -- app healthy on {host}" in out
    for gate in ("deploy/canary", "deploy/batch1", "deploy/batch2"):
        assert f"{gate}" in out
    # One at a time: each host is restarted and verified before the next one starts.
    lines = out.splitlines()
    order = [line.split("[STDOUT] -- ")[1] for line in lines if "[STDOUT] -- " in line
             and ("app" in line)]
    assert order == [what for host in ("db1", "db2", "db3") for what in (
        f"stopping app on {host}", "app started", f"app healthy on {host}")], "\n".join(order)
