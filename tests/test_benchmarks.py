"""Every benchmark `bash scripts/bench` runs still runs, each at a tiny size: what it prints
is not asserted (a figure is the benchmark's business), only that it gets to print it. A
benchmark that stops with an error measures nothing, and nobody notices until the figures
are wanted (bench_engine did so after a change to the step environment's calls)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"

# name: (arguments, a line it prints at its end, programs it needs)
CASES: dict[str, tuple[list[str], str, tuple[str, ...]]] = {
    "engine": (["bench_engine.py", "--steps", "20", "--fan", "5", "--calls", "20",
                "--clients", "1"], "load: 1 clients", ()),
    "scale": (["bench_scale.py", "--sizes", "1000", "--rounds", "1"],
              "a pause seen on the event stream", ()),
    "wrapper": (["bench_wrapper.py", "--commands", "5", "--rounds", "1"],
                "wrapped, here (sudo)", ("setsid",)),
    "views": (["bench_views.py", "--steps", "2000", "--repeat", "1", "--no-browser"],
              "the row-per-step table at 2,000 rows", ()),
    "web": (["bench_web.py", "--steps", "50", "--changes", "5", "--pages", "1"],
            "steps/s with it", ("chromium", "chromedriver")),
    "remote": (["bench_remote.py", "--only", "cold10", "--rounds", "1"],
               "the hosts' side alone", ("sshd", "ssh")),
    "dask": (["bench_dask.py", "--chain", "4", "--rounds", "1", "--steps", "4",
              "--fan-rounds", "1", "--workers", "2"], "steps of 50 ms CPU", ()),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_benchmark_runs(name: str) -> None:
    arguments, last_words, programs = CASES[name]
    for program in programs:
        require(program)
    done = subprocess.run([sys.executable, str(BENCHMARKS / arguments[0]), *arguments[1:]],
                          capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert last_words in done.stdout, done.stdout[-2000:]
