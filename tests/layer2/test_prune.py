"""`trail prune`: old runs leave the journal with their step log files; a run still open
and each trail's latest run stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import wait_until
from trail import Step, TrailClient, TrailServer
from trail.layer1.journal import Journal

ROOT = Path(__file__).parents[2]


def say(env: Any, context: Any) -> None:
    env.output("hello")


def one_run(journal: Path, name: str) -> int:
    server = TrailServer(Step(say, name="say"), journal=journal, name=name, resume=False)
    server.serve(threaded=True)
    client = TrailClient(server.socket_file, timeout=10)
    client.start()
    wait_until(lambda: client.info()["finished"], "the run to finish")
    run_id = int(client.info()["run"])
    client.shutdown(dry_run=False)
    assert server.join(30)
    return run_id


def prune(journal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trail", "prune", "--journal", str(journal),
                           *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_prune_forgets_old_runs_and_their_logs_but_never_an_open_or_latest_one(tmp_path):
    journal = tmp_path / "journal.sqlite3"
    alpha = [one_run(journal, "alpha") for _ in range(3)]
    beta = one_run(journal, "beta")
    steps = tmp_path / "steps"
    assert (steps / f"run{alpha[0]}-0.log").exists()
    # A run being served: open in the journal.
    server = TrailServer(Step(say, name="say"), journal=journal, name="gamma", resume=False)
    server.serve(threaded=True)
    try:
        looked = prune(journal, "--keep", "0")
        assert looked.returncode == 0, looked.stderr
        assert "would forget 2 run(s)" in looked.stdout, looked.stdout
        assert len(Journal(journal).runs()) == 5  # a dry run changes nothing

        done = prune(journal, "--keep", "0", "--yes", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert [run["id"] for run in report["runs"]] == alpha[:2]
        assert report["log_files"] == 2 and not report["dry_run"]
        book = Journal(journal)
        kept = {run["id"] for run in book.runs()}
        assert kept == {alpha[2], beta, server.run_id}
        assert book.timeline(alpha[0], messages=True) == []
        assert book.timeline(alpha[2], messages=True)  # the latest keeps its history
        book.close()
        assert not (steps / f"run{alpha[0]}-0.log").exists()
        assert (steps / f"run{alpha[2]}-0.log").exists()
    finally:
        TrailClient(server.socket_file, timeout=10).shutdown(dry_run=False)
        server.join(30)


def test_prune_needs_a_rule_and_a_journal_and_reads_ages(tmp_path):
    journal = tmp_path / "journal.sqlite3"
    no_rule = prune(journal)
    assert no_rule.returncode == 2 and "--older-than AGE, --keep N" in no_rule.stderr
    missing = prune(journal, "--keep", "3")
    assert missing.returncode == 2 and f"no journal at {journal}" in missing.stderr
    one_run(journal, "alpha")
    one_run(journal, "alpha")
    assert "no run to forget" in prune(journal, "--older-than", "2w").stdout
    assert "would forget 1 run(s)" in prune(journal, "--older-than", "0s").stdout
    bad = prune(journal, "--older-than", "soon")
    assert bad.returncode == 2 and "'soon' is not an age" in bad.stderr
