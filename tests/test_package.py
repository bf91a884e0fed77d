"""The public names: every one a runbook may import is there (they load on first use)."""

from __future__ import annotations

import importlib

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


def test_trail_run_plain_loads_no_heavy_library_it_does_not_use(tmp_path) -> None:
    """`trail run --plain` (cron, CI, a fleet's runs) starts without networkx (the graph is
    trail's own), rich (no terminal to draw on), the Dask executor or notifications: each
    was tens of milliseconds of every run's start-up."""
    import subprocess
    import sys

    book = tmp_path / "one.py"
    book.write_text("from trail import ShellCommand, Step\n"
                    "trail = [Step(ShellCommand('one', 'true'), name='one')]\n")
    probe = ("import runpy, sys\n"
             f"sys.argv = ['trail', 'run', '--plain', {str(book)!r}]\n"
             "try:\n    runpy.run_module('trail', run_name='__main__')\n"
             "except SystemExit as end:\n    code = end.code\n"
             "heavy = ('networkx', 'rich', 'distributed', 'dask', 'apprise')\n"
             "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
             "print('LOADED', code, ' '.join(loaded))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert "exit 0: all steps succeeded" in done.stdout, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "LOADED 0 ", done.stdout


def test_a_command_that_only_calls_the_api_loads_no_engine(tmp_path) -> None:
    """`trail ls`, `trail pause ...` and the like speak to a server: they load neither the
    engine, the journal nor the event classes (a fifth of their start-up)."""
    import subprocess
    import sys

    probe = ("import runpy, sys\n"
             "sys.argv = ['trail', 'ls']\n"
             "try:\n    runpy.run_module('trail', run_name='__main__')\n"
             "except SystemExit as end:\n    code = end.code\n"
             "unneeded = ('trail.layer1.engine', 'trail.layer1.journal', 'trail.layer1.events',"
             " 'trail.layer2.server', 'sqlite3')\n"
             "print('LOADED', code, ' '.join(sorted(set(sys.modules) & set(unneeded))))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.stdout.splitlines()[-1] == "LOADED 0 ", done.stdout + done.stderr
