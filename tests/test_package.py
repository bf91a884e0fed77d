"""The public names: every one a runbook may import is there (they load on first use)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["trail", "trail.layer2"])
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
