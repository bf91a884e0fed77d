"""A value is shown the same live and after the server is killed and the run taken up from
the journal: a date, a Decimal, a set, and an exception that cannot be pickled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import RunbookProcess, wait_states
from trail import TrailClient

RUNBOOK = str(Path(__file__).parent / "values_runbook.py")
FIELDS = ["State", "Return value", "Output messages"]

# What status() shows, live and after recovery alike (trail.layer1.values.shown).
EXPECTED = {
    "date": ("Succeeded", "2024-01-02", ["2024-01-02"]),
    "decimal": ("Succeeded", "1.10", []),
    "set": ("Succeeded", [1, 2, 3], [[1, 2, 3]]),
    "raise": ("Failed", "LocalError: the disk is full", []),
}


def Server(tmp: Path, executor: str) -> RunbookProcess:  # noqa: N802
    """`trail run` of the values runbook as a real process, on a fixed socket and journal."""
    return RunbookProcess(RUNBOOK, tmp, "values", "--executor", executor)


def shown(client: TrailClient) -> dict[str, tuple]:
    return {row["Name"]: tuple(row[field] for field in FIELDS)
            for row in client.status(fields=FIELDS) if row["Name"] in EXPECTED}


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_values_read_the_same_after_a_kill(tmp_path, executor):
    server = Server(tmp_path, executor)
    try:
        client = server.start()
        client.start(dry_run=False)
        wait_states(client, {name: state for name, (state, _, _) in EXPECTED.items()})
        live = shown(client)
        server.kill()
        client = server.start()
        assert client.info()["resumed"], "the restarted server did not take up the run"
        recovered = shown(client)
        assert recovered == live
        assert live == EXPECTED
        client.shutdown(dry_run=False)
    finally:
        server.stop()
