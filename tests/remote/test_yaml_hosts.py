"""A YAML runbook's `hosts:` fan-out, run by the real `trail run` against the tests' sshd:
one step per host, one host at a time, values reaching the host as single arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_a_yaml_fan_out_runs_on_every_host_one_at_a_time(sshd, tmp_path):
    book = tmp_path / "fleet.yaml"
    book.write_text(f"""\
name: yaml-fleet
context: {{note: "x; touch {tmp_path}/pwned"}}
host_groups: {{db: [db1, db2, db3]}}
steps:
  - name: restart
    run: ["sh", "-c", "echo stopping; sleep 0.2; echo started \\"$1\\"", "sh", "{{note}}"]
    hosts: db
    limit: 1
    ssh_options: ["-F", "{sshd.config}"]
    retries: 1
  - name: report
    run: ["echo", "all restarted"]
    needs: [restart]
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "trail", "run", str(book), "--plain",
         "--journal", str(tmp_path / "j.sqlite")],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "finished: 4 Succeeded" in out
    order = [line for line in out.splitlines()
             if "[STDOUT] -- stopping" in line or "[STDOUT] -- started" in line]
    assert ["stopping" in line for line in order] == [True, False] * 3, "\n".join(order)
    assert all(line.endswith(f"started x; touch {tmp_path}/pwned") for line in order[1::2])
    assert {line.split()[2] for line in order} == {"restart@db1", "restart@db2", "restart@db3"}
    assert not (tmp_path / "pwned").exists()
