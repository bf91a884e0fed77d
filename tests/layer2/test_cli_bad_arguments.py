"""Bad arguments to the `trail` command get a short error, never a traceback or a hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trail import Step

ROOT = Path(__file__).parents[2]


def trail(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trail", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def short_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 3, result.stderr
    return result.stderr


def noop(trail_env, context):
    return 1


@pytest.mark.parametrize("value", ["inf", "1e308", "-1", "0", "nan"])
def test_timeouts_that_are_not_a_wait(serve, value):
    client = serve(Step(noop))
    error = short_error(trail("--timeout", value, "status", "-s", client.socket_file))
    assert "--timeout" in error


def test_a_run_id_too_big_for_the_journal():
    error = short_error(trail("history", "99999999999999999999999"))
    assert "RUN_ID" in error


def test_send_of_five_thousand_brackets_is_text(serve):
    client = serve(Step(noop))
    result = trail("send", "-s", client.socket_file, "[" * 5000)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unusable_runtime_dir_falls_back(serve):
    # /proc is a directory where nobody, root included, can make trail/.
    result = trail("ls", env={"XDG_RUNTIME_DIR": "/proc"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "not using /proc/trail" in result.stderr
