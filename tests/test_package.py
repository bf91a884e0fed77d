"""The public names: every one a runbook may import is there (they load on first use)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["trail", "trail.layer1", "trail.layer2"])
def test_every_public_name_imports(module: str) -> None:
    package = importlib.import_module(module)
    for name in package.__all__:
        assert getattr(package, name) is not None, f"{module}.{name}"
    assert set(package.__all__) <= set(dir(package))


def test_the_fleet_names_are_public() -> None:
    from trail import Hosts, Rollout, RolloutStoppedError, on_hosts, rolling

    assert callable(rolling) and callable(on_hosts)
    assert issubclass(RolloutStoppedError, Exception)
    assert Hosts and Rollout


def loaded_by(argv: list[str], modules: tuple[str, ...], cwd: Path) -> tuple[str, list[str]]:
    """Run ``trail ARGV`` in a fresh interpreter: its output, and which of ``modules`` (or
    packages of them) it had loaded by the end."""
    probe = ("import runpy, sys\n"
             f"sys.argv = ['trail', *{argv!r}]\n"
             "try:\n    runpy.run_module('trail', run_name='__main__')\n"
             "except SystemExit as end:\n    code = end.code\n"
             "print('LOADED', code, *sorted(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    last = done.stdout.splitlines()[-1].split()
    assert last[:2] == ["LOADED", "0"], done.stdout + done.stderr
    found = [m for m in modules if any(name == m or name.startswith(m + ".")
                                       for name in last[2:])]
    return done.stdout, found


def test_trail_run_plain_loads_no_heavy_library_it_does_not_use(tmp_path: Path) -> None:
    """`trail run --plain` (cron, CI, a fleet's runs) starts without networkx (the graph is
    trail's own), rich (no terminal to draw on), the Dask executor or notifications: each
    was tens of milliseconds of every run's start-up."""
    book = tmp_path / "one.py"
    book.write_text("from trail import ShellCommand, Step\n"
                    "trail = [Step(ShellCommand('one', 'true'), name='one')]\n")
    out, heavy = loaded_by(["run", "--plain", str(book)],
                           ("networkx", "rich", "distributed", "dask", "apprise"), tmp_path)
    assert "exit 0: all steps succeeded" in out, out
    assert heavy == []


def test_a_command_that_only_calls_the_api_loads_no_engine(tmp_path: Path) -> None:
    """`trail ls`, `trail pause ...` and the like speak to a server: they load neither the
    engine, the journal nor the event classes (a fifth of their start-up)."""
    _, unneeded = loaded_by(["ls"], ("trail.layer1.engine", "trail.layer1.journal",
                                     "trail.layer1.events", "trail.layer2.server", "sqlite3"),
                            tmp_path)
    assert unneeded == []
