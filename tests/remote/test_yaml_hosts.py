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


def test_a_yaml_rolling_update_goes_batch_by_batch_and_asks_past_max_fail(sshd, tmp_path):
    """host_options once, {host} in the commands, phases per host, two batches; a failed
    host in the first batch makes its gate ask, and the runbook's answer goes on."""
    log = tmp_path / "log"
    book = tmp_path / "roll.yaml"
    book.write_text(f"""\
name: yaml-roll
host_groups: {{db: [db1, db2, db3]}}
host_options: {{ssh_options: ["-F", "{sshd.config}"]}}
answers: {{"deploy/batch1": "yes"}}
steps:
  - name: deploy
    hosts: db
    batch: 2
    max_fail: 0
    phases:
      - name: drain
        run: "echo drain {{host}} >> {log}"
        shell: true
      - name: restart
        run: "if [ {{host}} = db2 ]; then exit 3; fi; echo restart {{host}} >> {log}"
        shell: true
  - name: report
    run: ["echo", "done: {{deploy}}"]
    needs: [deploy]
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "trail", "run", str(book), "--plain", "--auto-answer",
         "--journal", str(tmp_path / "j.sqlite")],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # a host failed: the run did
    assert "finished: 8 Succeeded, 1 Failed" in out
    assert ("? 1 of 2 hosts of batch 1 of 2 failed (db2), more than max_fail=0 allows. Go on "
            "with the rollout? yes / no") in out
    lines = log.read_text().split("\n")[:-1]
    # db3 (batch 2) starts only after batch 1 is through, and went on after the answer.
    assert lines.index("drain db3") > max(lines.index("drain db1"), lines.index("drain db2"),
                                          lines.index("restart db1"))
    assert "restart db2" not in lines and "restart db3" in lines
    # The rollout's value: each host's last phase (db2 never got there).
    assert "[STDOUT] -- done: {'db1': '', 'db3': ''}" in out
