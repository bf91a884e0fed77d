"""A step that floods its output costs bounded memory and journal: every view gets the
newest lines behind a "[trail] ... truncated" note, a long line is cut with a note, and
`trail status` and `trail history` answer with a bounded reply. TRAIL_FLOOD_MB sizes the
flood (default 4 MB of each kind); figures are printed with -s."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support import RunbookProcess, wait_states
from trail.layer1.records import MAX_KEPT_CHARS, MAX_KEPT_MESSAGES
from trail.layer1.values import MAX_MESSAGE_CHARS

RUNBOOK = str(Path(__file__).parent / "flood_runbook.py")
MB = int(os.environ.get("TRAIL_FLOOD_MB", "4"))  # 4 MB: far past every cap


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_flood_of_output_is_bounded_everywhere(tmp_path):
    server = RunbookProcess(RUNBOOK, tmp_path, "flood", FLOOD_MB=str(MB))
    try:
        client = server.start()
        began = time.monotonic()
        client.start(dry_run=False)
        wait_states(client, {"many_lines": "Succeeded", "one_line": "Succeeded",
                             "big_output": "Succeeded"}, timeout=600)
        took = time.monotonic() - began
        assert server.process is not None
        peak = peak_rss_mb(server.process.pid)
        asked = time.monotonic()
        rows = client.status(fields=["Output messages"])[:3]
        status_s = time.monotonic() - asked
        for row in rows:
            said = row["Output messages"]
            # Trimmed in batches (to 90% once past 110%): never more than 110% and the note.
            assert len(said) <= MAX_KEPT_MESSAGES * 1.1 + 1
            assert sum(len(m) for m in said) <= MAX_KEPT_CHARS + MAX_MESSAGE_CHARS * 2
            assert all(len(m) <= MAX_MESSAGE_CHARS + 100 for m in said)
            assert any(m.endswith(f"the end of {row['Name']}") for m in said[-3:]), said[-3:]
        whole = json.dumps(client.status(fields=["Return value", "Output messages"]))
        assert len(whole) < 4 * 3 * MAX_KEPT_CHARS  # output and return value, per step
        many = rows[0]["Output messages"]
        assert many[0].startswith("[trail] ... truncated:"), many[0]
        assert "[STDOUT] -- " + "x" * 99 in many[-5:]
        one = rows[1]["Output messages"]
        long = [m for m in one if m.startswith("[STDOUT] -- yyy")]
        assert len(long) == 1 and "[trail] ... truncated:" in long[0]
        big = rows[2]["Output messages"]
        assert "[trail] ... truncated:" in big[0] and big[0].startswith("zzz")
        with sqlite3.connect(server.journal) as db:
            counts = dict(db.execute("SELECT n, COUNT(*) FROM messages GROUP BY n"))
            stored = db.execute("SELECT SUM(LENGTH(message)) FROM messages").fetchone()[0]
        assert max(counts.values()) <= MAX_KEPT_MESSAGES
        assert stored <= 3 * (MAX_KEPT_CHARS + MAX_MESSAGE_CHARS * 4)
        asked = time.monotonic()
        history = subprocess.run([sys.executable, "-m", "trail", "history", "1", "--journal",
                                  server.journal], capture_output=True, text=True, timeout=120,
                                 env=server.env)
        history_s = time.monotonic() - asked
        assert history.returncode == 0, history.stderr
        client.shutdown(dry_run=False)
        server.process.wait(30)
        journal_mb = sum(p.stat().st_size for p in tmp_path.glob("journal.sqlite3*")) / 1e6
        print(f"\nflood of {MB} MB x3: steps {took:.1f} s, server peak {peak:.0f} MB, "
              f"status {status_s:.2f} s, history {history_s:.2f} s, journal {journal_mb:.1f} MB")
        assert peak < 200 + 3 * MB, f"the server peaked at {peak:.0f} MB"
    finally:
        server.stop()
